"""Keep the memory of freed tensors for the next ones, instead of handing it back to the system.

A CPU tensor's memory comes from the C library's ``malloc``. glibc serves a block above its mmap
threshold (at most 32 MiB, however it adapts) with a fresh ``mmap`` and unmaps it on ``free``, and gives
the top of its heap back to the system once more than its trim threshold is free there. Training and
ranking allocate the same large activations over and over, so every step paid to fault fresh zeroed pages
in. Raising both thresholds to 1 GiB makes ``free`` keep the memory and the next tensor of that size reuse
it without a fault: on MovieLens-100K, one thread, epochs 1.3-1.5x and full-ranking passes 1.9-2.7x
faster (BENCHMARKS.md, "Keeping freed memory").

The price: a process keeps the memory of its largest step until it exits (its resident size stays at its
peak), as PyTorch's own caching allocator does on a GPU. ``INTENTREC_MALLOC=system`` leaves malloc as it
is. Other C libraries (macOS, musl) are left alone.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform

log = logging.getLogger(__name__)

#: mallopt parameters, from glibc's malloc.h.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
THRESHOLD = 1 << 30
ENV = "INTENTREC_MALLOC"


@functools.cache
def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds to 1 GiB, once per process; True when they were set.

    Nothing happens (False) with ``INTENTREC_MALLOC=system`` or another C library than glibc. Forked
    processes (``intentrec serve --workers``) inherit the setting.
    """
    choice = os.environ.get(ENV, "keep")
    if choice not in ("keep", "system"):
        log.warning("%s=%s: expected 'keep' or 'system'; keeping freed memory", ENV, choice)
    if choice == "system" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL("libc.so.6")
    # mallopt returns 1 on success; the mmap threshold first, since setting the trim threshold alone
    # switches off the adaptive mmap threshold, and every block above 128 KiB would then be mapped afresh
    return bool(libc.mallopt(M_MMAP_THRESHOLD, THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, THRESHOLD))
