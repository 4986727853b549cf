"""Parsing and reporting shared by several subcommands."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from intentrec.config import describe
from intentrec.data.readers import ColumnMapping
from intentrec.errors import ConfigError

if TYPE_CHECKING:
    from intentrec.recommender import Recommender

#: The exit status of a run that is written but not done, by why its training stopped: Ctrl-C (130, as a
#: shell reports SIGINT) or training that diverged (1; the run keeps its best epoch before it).
UNFINISHED_STATUS = {"interrupted": 130, "diverged": 1}


def parse_columns(text: str | None) -> ColumnMapping | None:
    """``"user=userId,item=movieId"`` -> a ColumnMapping; a clear error for anything else."""
    if not text:
        return None
    pairs = {}
    for part in text.split(","):
        key, sep, value = part.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise ConfigError(
                f"--columns {text!r}: expected role=column pairs, e.g. user=userId,item=movieId"
            )
        if key.strip() in pairs:
            raise ConfigError(f"--columns {text!r}: {key.strip()!r} is given twice.")
        pairs[key.strip()] = value.strip()
    try:
        return ColumnMapping.model_validate(pairs)
    except ValidationError as error:
        raise ConfigError(describe(error, f"--columns {text!r}", ColumnMapping)) from None


def parse_weights(flag: str, pairs: list[str]) -> dict[str, float]:
    """``["Drama=2", "next 5-8=0"]`` -> ``{"Drama": 2.0, "next 5-8": 0.0}``; a clear error otherwise."""
    weights = {}
    for pair in pairs:
        name, sep, value = pair.rpartition("=")
        try:
            weights[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep or not name.strip():
            raise ConfigError(f"{flag} {pair!r}: expected NAME=WEIGHT, e.g. {flag} Drama=2")
    return weights


def report_run(run: str, recommender: Recommender) -> None:
    """Print the test metrics of a run just trained; exit with a status a script can read when its
    training did not finish (:data:`UNFINISHED_STATUS`)."""
    if not recommender.metrics:
        return  # one of several torchrun processes, not the first: process 0 reports
    typer.echo(json.dumps({"run": run, "test": recommender.metrics["test"]}, indent=2))
    status = UNFINISHED_STATUS.get(recommender.metrics.get("stopped", ""))
    if status is not None:
        raise typer.Exit(status)
