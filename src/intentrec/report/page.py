"""The report's HTML: one self-contained page, built from plain strings.

Self-contained: the figures are inline ``data:`` PNGs and the style is inline; the page's
Content-Security-Policy forbids loading anything else and running any script, so it opens the same
offline, from an e-mail or from a CI artefact. Every string read from a run's files goes through
:func:`html.escape`: a run or category name is shown as text, never read as markup.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Sequence

from intentrec.report import plots
from intentrec.report.runs import RunSummary, as_float

MISSING = "—"

#: The test metrics of the main table, ``(metrics.json key, column header)``: accuracy, then beyond
#: accuracy (:mod:`intentrec.evaluation.beyond_accuracy`), all at K = 10.
METRICS = (
    ("ndcg@10", "NDCG@10"),
    ("recall@10", "Recall@10"),
    ("hr@10", "HR@10"),
    ("entropy@10", "Entropy@10"),
    ("ild@10", "ILD@10"),
    ("novelty@10", "Novelty@10"),
    ("coverage@10", "Coverage@10"),
    ("personalisation@10", "Personalisation@10"),
    ("explore_recall@10", "Explore Recall@10"),
    ("explore_ndcg@10", "Explore NDCG@10"),
    ("explore_users", "Explore users"),
)

_STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1400px; padding: 0 1em;
       color: #222; }
h1 { margin-bottom: 0.2em; }
.wide { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.92em;
        font-variant-numeric: tabular-nums; }
th, td { border-bottom: 1px solid #ddd; padding: 0.3em 0.6em; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; }
caption { text-align: left; font-weight: 600; padding-bottom: 0.3em; }
.row { display: flex; flex-wrap: wrap; gap: 1em 2.5em; align-items: flex-start; }
figure { margin: 0 0 1.5em; flex: 1 1 440px; max-width: 640px; }
img { width: 100%; height: auto; }
figcaption { color: #555; font-size: 0.9em; }
.note { color: #666; }
"""

# nothing but this page's inline style and inline images: no script, no request anywhere
_POLICY = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

#: How every report's title starts: an existing file that has it is a report ``write_report`` may replace.
REPORT_TITLE = "IntentRec report: "


def render_page(runs: Sequence[RunSummary]) -> str:
    """The whole report for ``runs`` as one HTML document."""
    names = ", ".join(run.name for run in runs)
    # a finished run measured at other cutoffs (eval.ks without 10) would show as missing without this
    other_ks = [run.name for run in runs if run.metrics.get("test") and run.test("ndcg@10") is None]
    unmeasured = (
        f" Not measured at K = 10 (eval.ks without 10), so shown as missing: {_text(', '.join(other_ks))}."
        if other_ks
        else ""
    )
    sections = [
        "<h1>IntentRec report</h1>",
        f'<p class="note">{len(runs)} run(s): {_text(names)}. Test metrics are full-ranking, at K = 10.'
        f"{unmeasured}</p>",
        "<h2>Test metrics</h2>",
        _metrics_table(runs),
        "<h2>Accuracy and diversity</h2>",
        '<div class="row">',
        _figure(
            plots.tradeoff(runs, "entropy@10", "Entropy@10 (test, bits)"),
            "Test NDCG@10 against the entropy of the top-10 lists' category mix: up and right is better.",
        ),
        _figure(
            plots.tradeoff(runs, "coverage@10", "Coverage@10 (test)"),
            "Test NDCG@10 against the share of the catalogue that appears in some user's top 10.",
        ),
        "</div>",
        "<h2>Training</h2>",
        '<div class="row">',
        _figure(plots.curves(runs, "valid_ndcg@10", "NDCG@10 (validation)"), "Validation NDCG@10 per epoch."),
        _figure(plots.curves(runs, "loss", "training loss"), "Training loss per epoch."),
        "</div>",
        _per_run_tables(runs, "Prior heads", "test_heads", _heads_table),
        _per_run_tables(runs, "Categories", "test_by_category", _category_table),
    ]
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f'<meta http-equiv="Content-Security-Policy" content="{_POLICY}">\n'
        f"<title>{REPORT_TITLE}{_text(names)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(section for section in sections if section)
        + "\n</body>\n</html>\n"
    )


def _metrics_table(runs: Sequence[RunSummary]) -> str:
    headers = [
        "run", "backbone", "priors", *(label for _, label in METRICS),
        "backbone params", "heads params", "best epoch", "epochs", "stopped", "fit seconds",
    ]  # fmt: skip
    rows = []
    for run in runs:
        name = _text(run.name)
        if not run.metrics:
            name += ' <span class="note">(not finished: no metrics.json)</span>'
        timing = run.metrics.get("timing", {})
        parameters = run.metrics.get("parameters", {})  # runs before it was recorded have none
        if not isinstance(parameters, dict):
            parameters = {}
        cells = [
            name,
            _text(run.backbone),
            _text(run.priors),
            *(_number(run.test(key)) for key, _ in METRICS),
            _count(parameters.get("backbone")),
            _count(parameters.get("heads")),
            _text(run.metrics.get("best_epoch", MISSING)),
            _text(run.metrics.get("epochs", MISSING)),
            # early_stopping, max_epochs, time_limit, interrupted, diverged: one cut short does not look done
            _text(str(run.metrics.get("stopped", MISSING)).replace("_", " ")),
            # this session's: a resumed run's earlier sessions are in its history
            _number(timing.get("fit_seconds") if isinstance(timing, dict) else None, digits=1),
        ]
        rows.append(cells)
    return f'<div class="wide">{_table(headers, rows)}</div>'


def _per_run_tables(
    runs: Sequence[RunSummary], title: str, key: str, table: Callable[[RunSummary, dict], str]
) -> str:
    """A section with one ``table(run, metrics[key])`` per run that has ``key``; nothing when none has."""
    tables = [table(run, run.metrics[key]) for run in runs if isinstance(run.metrics.get(key), dict)]
    tables = [each for each in tables if each]
    if not tables:
        return ""
    return f'<h2>{title}</h2>\n<div class="row">\n' + "\n".join(tables) + "\n</div>"


def _heads_table(run: RunSummary, shares: dict) -> str:
    """Which prior head filled what share of the test users' top-10 slots."""
    rows = [[_text(head), _percent(share)] for head, share in shares.items()]
    return _table(["head", "share of top-10 slots"], rows, caption=run.name) if rows else ""


def _category_table(run: RunSummary, categories: dict) -> str:
    """Accuracy over the test users with a target of each category (in the order metrics.json gives)."""
    rows = [
        [
            _text(category),
            _text(values.get("users", MISSING)),
            _number(values.get("recall@10")),
            _number(values.get("ndcg@10")),
        ]
        for category, values in categories.items()
        if isinstance(values, dict)
    ]
    return _table(["category", "users", "Recall@10", "NDCG@10"], rows, caption=run.name) if rows else ""


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None) -> str:
    """An HTML table of cells that are already HTML; ``headers`` and ``caption`` are escaped here."""
    head = "".join(f"<th>{_text(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row in rows)
    top = f"<caption>{_text(caption)}</caption>" if caption is not None else ""
    return f"<table>{top}\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody></table>"


def _figure(png: bytes | None, caption: str) -> str:
    if png is None:
        return f'<p class="note">{_text(caption)} No run has these values.</p>'
    data = base64.b64encode(png).decode("ascii")
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{_text(caption)}">'
        f"<figcaption>{_text(caption)}</figcaption></figure>"
    )


def _number(value: object, digits: int = 4) -> str:
    number = as_float(value)
    return MISSING if number is None else f"{number:.{digits}f}"


def _count(value: object) -> str:
    number = as_float(value)
    return MISSING if number is None else f"{int(number):,}"


def _percent(value: object) -> str:
    share = as_float(value)
    return MISSING if share is None else f"{100 * share:.1f}%"


def _text(value: object) -> str:
    return html.escape(str(value))
