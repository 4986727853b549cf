"""``intentrec serve RUN``: recommendations over HTTP from a trained run."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import typer
from pydantic import ValidationError

from intentrec.config import apply_overrides, describe, with_options
from intentrec.errors import ConfigError

if TYPE_CHECKING:
    from intentrec.serving.service import ServeConfig


def serve(
    run: str = typer.Argument(..., help="A run folder written by `intentrec fit --out`."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, help="Port to listen on (0: any free port)."),
    token: str | None = typer.Option(
        None,
        envvar="INTENTREC_TOKEN",
        help="Require 'Authorization: Bearer TOKEN' on every route but /health and the docs.",
    ),
    index: str | None = typer.Option(None, help="Vector index: auto (default), exact or hnsw."),
    set_: list[str] = typer.Option(
        [],
        "--set",
        help="Override a serving setting, e.g. --set cache_users=0 --set index.ef_search=1024.",
    ),
    workers: int | None = typer.Option(
        None, help="Processes serving requests (default 1; up to one a core)."
    ),
    access_log: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve POST /recommend, GET /items/{id}/similar, /health, /metadata and the docs at /docs."""
    # imported here: the web stack and faiss would slow every other command's start by a second
    from intentrec.serving.server import serve as run_server

    # click reads an empty variable as no option at all: INTENTREC_TOKEN=$SECRET with $SECRET unset would
    # serve without a token, and without a word
    if token is None and "INTENTREC_TOKEN" in os.environ:
        raise ConfigError(
            "INTENTREC_TOKEN is set but empty: give a secret, or unset it to serve without one."
        )
    settings = parse_serve_config(with_options({"index.kind": index, "workers": workers}, set_))
    if not run_server(run, host, port, token, settings, access_log):
        raise typer.Exit(1)  # a worker died unasked: said in the log when it happened


def parse_serve_config(overrides: list[str]) -> ServeConfig:
    """``--set key=value`` strings -> a ServeConfig; a clear error naming the setting otherwise."""
    from intentrec.serving.service import ServeConfig

    try:
        return ServeConfig.model_validate(apply_overrides({}, overrides))
    except ValidationError as error:
        raise ConfigError(describe(error, "serving settings", ServeConfig)) from None
