"""``intentrec report``: runs side by side on one self-contained HTML page that people can read.

The page shows each run's test metrics (accuracy and beyond accuracy at K = 10), accuracy against
diversity and coverage, the training curves, and, for runs that recorded them, the share of the top-10
slots each prior head filled and the accuracy per category.

    runs.py   what is read from a run folder (config.json, metrics.json, history.jsonl)
    plots.py  the figures (matplotlib, PNG)
    page.py   the HTML

Examples
--------
>>> write_report(["runs/sasrec", "runs/hstu"], "report.html")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from intentrec.report.page import REPORT_TITLE, render_page
from intentrec.report.runs import ReportError, RunSummary, read_run, read_runs
from intentrec.run import RunFiles
from intentrec.storage import check_file_target, write_text

__all__ = ["ReportError", "RunSummary", "read_run", "read_runs", "render_page", "write_report"]


def write_report(runs: Sequence[str | Path], out: str | Path) -> Path:
    """Write the report of the run folders ``runs``, in that order, to ``out`` (atomically)."""
    target = check_file_target(out)
    for run in runs:
        RunFiles(run).check_not_ours(out)
    if target.exists() and not _is_report(target):  # a typo must not cost a file
        raise ReportError(
            f"--out {out}: the file exists and is no report written by IntentRec; give another name, "
            "or delete it first."
        )
    page = render_page(read_runs(runs))
    write_text(out, page)
    return Path(out)


def _is_report(path: Path) -> bool:
    try:
        with path.open(encoding="utf-8") as file:
            return REPORT_TITLE in file.read(2048)
    except (OSError, UnicodeDecodeError):
        return False
