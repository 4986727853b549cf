"""``intentrec fit``: train a model on a log and write the run folder."""

from __future__ import annotations

import typer

from intentrec.cli.options import parse_columns, report_run
from intentrec.config import RunConfig, apply_overrides, read_config_file, with_options
from intentrec.errors import ConfigError
from intentrec.recommender import Recommender


def fit(
    data: str | None = typer.Option(
        None, help="Log file/folder or public dataset name (default: the built-in ml-latest-small)."
    ),
    format: str | None = typer.Option(None, "--format", help="Reader to use instead of recognising it."),
    columns: str | None = typer.Option(None, help="Column roles of a generic table: user=...,item=...,..."),
    model: str | None = typer.Option(
        None,
        help="Backbone: sasrec, hstu, gru4rec or fuxi.",
    ),
    priors: str | None = typer.Option(
        None, help="Prior heads, one or two of taxonomy, clusters, events, horizon: e.g. taxonomy,horizon."
    ),
    device: str | None = typer.Option(None, help="Train and rank on this torch device: cpu, cuda, cuda:1."),
    config: str | None = typer.Option(None, help="A .json or .toml config file (see config.json of a run)."),
    set_: list[str] = typer.Option([], "--set", help="Override one setting, e.g. --set train.lr=0.0005."),
    out: str = typer.Option(..., help="Run folder to write (config, dataset, weights, metrics, log)."),
    overwrite: bool = typer.Option(
        False, "--overwrite", help="Replace the run --out holds (kept until the new run has weights)."
    ),
) -> None:
    """Train, early-stop on validation NDCG@10, then measure the test set; artefacts go to --out."""
    if not out.strip():
        raise ConfigError("--out is empty: give the folder to write the run to, e.g. --out runs/first.")
    # validated once the options are in: the file may hold what is valid only with them
    values = read_config_file(config) if config else {}
    options: dict[str, object] = {
        "data.path": data,
        "data.format": format,
        "data.columns": parse_columns(columns).model_dump(exclude_none=True) if columns else None,
        "model.name": model,
        "train.device": device,
    }
    if priors is not None:
        options["heads.priors"] = [name.strip() for name in priors.split(",") if name.strip()]
        if not options["heads.priors"]:
            raise ConfigError(f"--priors {priors!r}: name one or two priors, e.g. --priors taxonomy,horizon.")
    values = apply_overrides(values, with_options(options, set_))
    source = f"{config} with the command line's options" if config else "command line"
    recommender = Recommender(RunConfig.from_dict(values, source)).fit(out=out, overwrite=overwrite)
    report_run(out, recommender)
