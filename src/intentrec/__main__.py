"""``python -m intentrec``, the same as the ``intentrec`` command (``torchrun -m intentrec fit ...``)."""

from intentrec.cli import main

main()
