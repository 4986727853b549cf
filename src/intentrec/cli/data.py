"""``intentrec data info PATH``: what is in a log, before anything is trained."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from intentrec.cli.options import parse_columns
from intentrec.data.load import DataConfig, load_dataset
from intentrec.errors import ConfigError

app = typer.Typer(help="Inspect interaction logs.", no_args_is_help=True)


@app.command("info")
def info(
    path: str = typer.Argument(
        ..., help="A file, a folder, or a public dataset name (e.g. ml-latest-small)."
    ),
    format: str | None = typer.Option(None, "--format", help="Reader to use instead of recognising it."),
    columns: str | None = typer.Option(None, help="Column roles of a generic table: user=...,item=...,..."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Read a log and print its size, sequence lengths, event types, time span and item metadata."""
    if not path.strip():  # an unset $DATA in a script
        raise ConfigError("data info: PATH is empty; give a log file, a folder or a dataset name.")
    config = DataConfig(path=path, format=format, columns=parse_columns(columns))
    dataset = load_dataset(config)
    summary = dataset.summary()
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    table = Table(title=f"{summary['name']}  ({summary['format']}: {Path(summary['source']).name})")
    table.add_column("property")
    table.add_column("value", overflow="fold")
    for key, value in summary.items():
        if key in ("name", "source", "format"):
            continue
        if isinstance(value, dict):
            value = ", ".join(f"{k}: {_number(v)}" for k, v in value.items())
        table.add_row(key.replace("_", " "), _number(value))
    Console().print(table)


def _number(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)
