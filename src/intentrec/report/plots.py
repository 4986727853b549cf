"""The report's figures, drawn off-screen into PNG bytes that the page inlines.

Figures are built with :class:`matplotlib.figure.Figure` on an Agg canvas, never through ``pyplot``: no
GUI backend is needed and no global figure list grows, so a report can be written from any thread or
server. A run keeps its colour in every figure, so a reader can follow it from one plot to the next.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib as mpl
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from intentrec.report.runs import RunSummary

_SIZE = (6.4, 4.0)  # inches; at _DPI the PNG is 704 x 440 pixels
_DPI = 110


def tradeoff(runs: Sequence[RunSummary], x_key: str, x_label: str) -> bytes | None:
    """Test NDCG@10 against the test metric ``x_key``, one labelled point per run.

    None when no run has both metrics (e.g. only runs from before beyond-accuracy metrics existed).
    """
    points = [
        (run.test(x_key), run.test("ndcg@10"), colour, run.name)
        for run, colour in zip(runs, _colours(len(runs)), strict=True)
    ]
    points = [(x, y, colour, name) for x, y, colour, name in points if x is not None and y is not None]
    if not points:
        return None
    figure, axes = _figure(x_label, "NDCG@10 (test)")
    for x, y, colour, name in points:
        axes.scatter([x], [y], color=colour, s=36, zorder=3)
        axes.annotate(
            _literal(name), (x, y), xytext=(5, 4), textcoords="offset points", fontsize=8, color=colour
        )
    axes.margins(0.15)  # room for the labels of the outermost points
    return _png(figure)


def curves(runs: Sequence[RunSummary], key: str, y_label: str) -> bytes | None:
    """``key`` of the training history per epoch, one line per run; None when no run recorded it."""
    figure, axes = _figure("epoch", y_label)
    lines, labels = [], []
    for run, colour in zip(runs, _colours(len(runs)), strict=True):
        epochs, values = run.curve(key)
        if epochs:
            (line,) = axes.plot(epochs, values, color=colour, marker="o", markersize=3, linewidth=1.5)
            lines.append(line)
            labels.append(_literal(run.name))
    if not lines:
        return None
    axes.xaxis.get_major_locator().set_params(integer=True, min_n_ticks=1)  # one epoch: no 0.98, 1.02
    # handles and labels given explicitly: matplotlib would otherwise drop a run whose name starts with "_"
    axes.legend(lines, labels, fontsize=8)
    return _png(figure)


def _figure(x_label: str, y_label: str) -> tuple[Figure, Axes]:
    figure = Figure(figsize=_SIZE, dpi=_DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.set_xlabel(x_label)
    axes.set_ylabel(y_label)
    axes.grid(True, alpha=0.3)
    return figure, axes


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _colours(n: int) -> list[tuple[float, float, float, float]]:
    palette = mpl.colormaps["tab10" if n <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(n)]


def _literal(text: str) -> str:
    # matplotlib reads text between two "$" as TeX math; a run name is shown as it is
    return text.replace("$", r"\$")
