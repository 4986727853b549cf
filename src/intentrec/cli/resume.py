"""``intentrec resume``: continue training a run from its last whole epoch."""

from __future__ import annotations

import typer

from intentrec.cli.options import report_run
from intentrec.recommender import Recommender
from intentrec.training.trainer import RESUMABLE_SETTINGS


def resume(
    run: str = typer.Argument(..., help="Run folder written by `intentrec fit`."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Change one of "
        + ", ".join(f"train.{name}" for name in RESUMABLE_SETTINGS)
        + ", e.g. --set train.max_minutes=60.",
    ),
) -> None:
    """Continue a run cut short (time limit, Ctrl-C, a crash) as if it had never stopped; then measure
    the test set and rewrite the run's metrics."""
    recommender = Recommender.resume(run, set_)
    report_run(run, recommender)
