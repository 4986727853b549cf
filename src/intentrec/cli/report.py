"""``intentrec report RUN [RUN ...]``: the runs side by side on one self-contained HTML page."""

from __future__ import annotations

import typer


def report(
    runs: list[str] = typer.Argument(..., help="Run folders written by `intentrec fit --out`."),
    out: str = typer.Option("report.html", help="The HTML file to write (self-contained: send it as it is)."),
) -> None:
    """Compare runs: test metrics, accuracy against diversity, training curves, heads and categories."""
    # imported here, not at the top: matplotlib takes about a second to import and only this command uses it
    from intentrec.report import write_report

    path = write_report(runs, out)
    typer.echo(f"wrote the report of {len(runs)} run(s) to {path}", err=True)
