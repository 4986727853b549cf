"""Filters applied to a raw interaction log before it is encoded into a Dataset.

Order of application: event-type selection, rating threshold, duplicate policy, then the iterative
k-core (which must come last, because every other filter can push users or items under the minimum).
"""

from __future__ import annotations

import logging
from typing import Literal

import polars as pl
from pydantic import Field

from intentrec.errors import DataError
from intentrec.settings import Settings

log = logging.getLogger("intentrec")


class FilterConfig(Settings):
    """Which interactions of a log are kept."""

    min_user_interactions: int = Field(0, ge=0, description="k-core: drop users with fewer interactions.")
    min_item_interactions: int = Field(0, ge=0, description="k-core: drop items with fewer interactions.")
    min_rating: float | None = Field(None, description="Keep interactions whose value is at least this.")
    events: list[str] | None = Field(None, description="Keep only these event types (None keeps all).")
    duplicates: Literal["drop_exact", "keep"] = Field(
        "drop_exact",
        description="'drop_exact' keeps the first of rows equal in user, item, timestamp and event; "
        "'keep' keeps every row. Repeats of an item at different times are always kept.",
    )


def apply_filters(interactions: pl.DataFrame, config: FilterConfig, source: str) -> pl.DataFrame:
    """Apply ``config`` to an interactions table; raise if nothing is left.

    ``interactions`` has the raw columns (user, item, timestamp, event, value, ...), sorted by user and
    timestamp with equal timestamps in reading order (as ``Dataset.from_raw`` sorts them); the result has
    the same columns and keeps the relative order of the rows it keeps.
    """
    if config.events is not None:
        present = set(interactions["event"].unique().to_list())
        missing = [event for event in config.events if event not in present]
        if missing:
            raise DataError(
                f"{source}: event type(s) {missing} selected by 'events' are not in the log; "
                f"it has {sorted(present)}."
            )
        interactions = interactions.filter(pl.col("event").is_in(config.events))
        _require_rows(interactions, source, f"selecting events {config.events}")

    if config.min_rating is not None:
        if interactions["value"].null_count() == interactions.height:
            raise DataError(
                f"{source}: 'min_rating' is set to {config.min_rating} but the log has no rating values."
            )
        interactions = interactions.filter(pl.col("value") >= config.min_rating)
        _require_rows(interactions, source, f"keeping ratings >= {config.min_rating}")

    if config.duplicates == "drop_exact":
        before = interactions.height
        interactions = _drop_exact_duplicates(interactions)
        if interactions.height < before:
            log.info(
                "%s: dropped %d exact repeat(s) of an event (same user, item, time and type; "
                "data.filters.duplicates='keep' keeps them)",
                source,
                before - interactions.height,
            )

    if config.min_user_interactions > 1 or config.min_item_interactions > 1:
        interactions = k_core(interactions, config.min_user_interactions, config.min_item_interactions)
        _require_rows(
            interactions,
            source,
            f"the {config.min_user_interactions}/{config.min_item_interactions} (user/item) k-core filter",
        )
    return interactions


def k_core(interactions: pl.DataFrame, min_user: int, min_item: int) -> pl.DataFrame:
    """Iteratively drop users and items with too few interactions until every one left has enough.

    Each pass is two vectorised group-bys; it converges in a handful of passes on real logs.
    """
    while True:
        before = interactions.height
        if min_item > 1:
            interactions = interactions.filter(pl.len().over("item") >= min_item)
        if min_user > 1:
            interactions = interactions.filter(pl.len().over("user") >= min_user)
        if interactions.height == before:
            return interactions


def _drop_exact_duplicates(interactions: pl.DataFrame) -> pl.DataFrame:
    """Keep the first of the rows equal in user, item, timestamp and event.

    Sorted by user and timestamp, equal rows sit in one run of equal (user, timestamp), so only the rows
    of runs longer than one need hashing: memory stays small on real logs, where most events have a time
    of their own.
    """
    tied = (pl.col("user") == pl.col("user").shift(1)) & (pl.col("timestamp") == pl.col("timestamp").shift(1))
    in_run = (tied | tied.shift(-1)).fill_null(False)
    rows = interactions.with_row_index("_row")
    candidates = rows.filter(in_run)
    repeats = candidates.filter(~pl.struct("user", "item", "timestamp", "event").is_first_distinct())["_row"]
    if repeats.is_empty():
        return interactions
    return rows.filter(~pl.col("_row").is_in(repeats.implode())).drop("_row")


def _require_rows(interactions: pl.DataFrame, source: str, step: str) -> None:
    if interactions.height == 0:
        raise DataError(f"{source}: no interactions left after {step}; loosen that filter.")
