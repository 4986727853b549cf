"""``intentrec recommend RUN --out FILE``: recommendations for many users, streamed to Parquet or CSV."""

from __future__ import annotations

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from intentrec.cli.options import parse_weights
from intentrec.config import describe
from intentrec.errors import ConfigError, IntentRecError
from intentrec.models.heads import Steering
from intentrec.recommender import Recommender
from intentrec.run import RunFiles
from intentrec.serving.batch import read_user_ids, recommendations_file, write_recommendations


def recommend(
    run: str = typer.Argument(..., help="A run folder written by `intentrec fit --out`."),
    users: str = typer.Option("all", help="'all', or a text file with one user ID per line."),
    k: int = typer.Option(100, min=1, help="Items per user."),
    out: str = typer.Option(
        ..., help="Parquet (or .csv) file to write: user, rank, item, score, head (your IDs)."
    ),
    keep_seen: bool = typer.Option(False, "--keep-seen", help="Also recommend items the user has had."),
    include_category: list[str] = typer.Option([], help="Only items of this category (repeatable)."),
    exclude_category: list[str] = typer.Option([], help="No item of this category (repeatable)."),
    head_weight: list[str] = typer.Option(
        [], help="Prior heads: weigh a head, NAME=W (repeatable; 'next': the backbone's own)."
    ),
    value_weight: list[str] = typer.Option(
        [], help="Prior heads: weigh every head with a prior value, VALUE=W (repeatable)."
    ),
    only: list[str] = typer.Option([], help="Prior heads: keep only these heads or values (repeatable)."),
    unexplored: float = typer.Option(
        1.0, help="Prior heads: weigh the heads of categories new to each user by this (> 1: explore)."
    ),
    at: int | None = typer.Option(
        None,
        help="When the items are asked for, in the log's time unit (default now); read by runs with "
        "model.query_time 'request'.",
    ),
) -> None:
    """Rank the whole catalogue for each user, as the evaluator does, and stream the top k to a file."""
    steering = None
    if head_weight or value_weight or only or unexplored != 1:
        try:
            steering = Steering(
                heads=parse_weights("--head-weight", head_weight),
                values=parse_weights("--value-weight", value_weight),
                only=only or None,
                unexplored=unexplored,
            )
        except ValidationError as error:  # a negative weight
            raise ConfigError(describe(error, "steering", Steering)) from None
    RunFiles(run).check_not_ours(out)
    recommendations_file(out)  # before the model loads
    recommender = Recommender.load(run)
    try:  # checked here, so that the message names the options
        recommender.catalogue.allowed(include_category, exclude_category)
    except IntentRecError as error:
        raise ConfigError(f"--include-category / --exclude-category: {error}") from None
    wanted = None if users == "all" else read_user_ids(users, recommender.catalogue)
    total = len(wanted) if wanted is not None else recommender.catalogue.n_users
    console = Console(stderr=True)
    # transient: a mistake found once the bar is up is printed alone, not under a bar stuck at 0
    with Progress(
        TextColumn("recommend"), BarColumn(), MofNCompleteColumn(), TextColumn("users"),
        TimeRemainingColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("users", total=total)
        rows = write_recommendations(
            recommender,
            out,
            wanted,
            k,
            filter_seen=not keep_seen,
            include_categories=include_category,
            exclude_categories=exclude_category,
            steering=steering,
            on_block=lambda n: progress.advance(task, n),
            at=at,
        )
    console.print(f"wrote {rows:,} recommendations for {total:,} users to {out}", highlight=False)
