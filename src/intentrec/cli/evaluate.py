"""``intentrec evaluate RUN``: reload a run and measure it again, by full ranking."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from intentrec.models.model import Precision
from intentrec.recommender import Recommender


def evaluate(
    run: str = typer.Argument(..., help="A run folder written by `intentrec fit --out`."),
    as_json: bool = typer.Option(False, "--json", help='Print {"valid": {...}, "test": {...}} as JSON.'),
    device: str = typer.Option("cpu", help="Rank on this torch device: cpu, cuda, cuda:1."),
    precision: Precision = typer.Option(
        "float32", help="The backbone's arithmetic: float32, or bfloat16 (faster, metrics differ slightly)."
    ),
) -> None:
    """Recompute validation and test metrics from the saved weights and data; they equal those of fit
    (in float32)."""
    recommender = Recommender.load(run, device, precision)
    metrics = {"valid": recommender.evaluate("valid"), "test": recommender.evaluate("test")}
    if as_json:
        typer.echo(json.dumps(metrics, indent=2))
        return
    seen = "filtered" if recommender.config.eval.filter_seen else "kept"
    table = Table(title=f"{escape(run)}: full ranking, seen items {seen}")
    table.add_column("metric")
    table.add_column("valid", justify="right")
    table.add_column("test", justify="right")
    for name in metrics["test"]:
        table.add_row(name, f"{metrics['valid'][name]:.4f}", f"{metrics['test'][name]:.4f}")
    console = Console()
    console.print(table)
    stored = recommender.metrics.get("test")
    if stored is not None:
        same = stored == metrics["test"]
        console.print(
            "matches the metrics recorded at fit time"
            if same
            else "[yellow]differs from the metrics recorded at fit time[/]"
        )
