"""The ``intentrec`` command: one small module per subcommand; all logic lives in the library.

A user mistake (an :class:`~intentrec.errors.IntentRecError`) is printed as one clear message and exits
with status 2; only a bug in IntentRec shows a traceback.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from intentrec.cli import data, evaluate, fit, recommend, report, resume, serve
from intentrec.errors import IntentRecError
from intentrec.training import processes

app = typer.Typer(
    name="intentrec",
    help="Sequential recommendation: inspect data, train, evaluate, recommend, serve, report.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data.app, name="data")
app.command("fit")(fit.fit)
app.command("resume")(resume.resume)
app.command("evaluate")(evaluate.evaluate)
app.command("recommend")(recommend.recommend)
app.command("serve")(serve.serve)
app.command("report")(report.report)

stderr = Console(stderr=True)


def _stop_as_on_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=stderr, show_path=False, show_time=False)],
    )
    # faiss reports at INFO which build it loads, and that it fell back from one that does not exist
    logging.getLogger("faiss").setLevel(logging.WARNING)
    # SIGTERM (timeout, docker stop, a job scheduler) stops as Ctrl-C does: the run keeps what it has
    # (torchrun's processes replace this with their own way of stopping together)
    signal.signal(signal.SIGTERM, _stop_as_on_ctrl_c)
    status: int | str | None = 0
    try:
        # standalone: typer reports its own usage errors and exits with their status, and ends on Ctrl-C
        # itself (with status 130; `fit` and `resume` catch it first to write the run). (Recent typer
        # versions vendor click, so `import click` is not available to catch them here ourselves.)
        app()
    except SystemExit as done:
        status = done.code
    except IntentRecError as error:
        processes.hand_to_torchrun(f"error: {error}")
        if os.environ.get("RANK", "0") == "0":  # under torchrun every process meets the mistake: say it once
            # escaped: a message quoting a path or a line like "[a]" must print as it is, never as markup
            stderr.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        status = 2
    if processes.joined():  # one of several torchrun processes: they end together
        processes.exit_group(status if isinstance(status, int) else int(status is not None))
    sys.exit(status)
