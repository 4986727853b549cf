"""Taobao UserBehavior (Zhu et al., KDD 2018; Alibaba Tianchi dataset 649).

``UserBehavior.csv`` has no header and five comma-separated integer-or-name fields per line:
``user_id,item_id,category_id,behavior_type,timestamp`` with behavior ``pv`` (page view), ``fav``,
``cart`` or ``buy`` and unix-second timestamps. The behavior becomes the event; the category becomes
the item's only category.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from intentrec.data.raw import RawLog
from intentrec.data.readers.columns import Check, checked_cast, interactions_table, items_table, run_checks
from intentrec.data.readers.files import collect, scan_lines, scannable, split_fields

#: The behaviors of the Taobao log.
BEHAVIORS = ("pv", "fav", "cart", "buy")

#: Field names, in file order.
FIELDS = ["user", "item", "category", "behavior", "timestamp"]


def looks_like_taobao(line: str) -> bool:
    """Whether a line has the shape of a UserBehavior row: four integers around a known behavior."""
    fields = line.strip().split(",")
    if len(fields) != len(FIELDS) or fields[3] not in BEHAVIORS:
        return False
    return all(field.lstrip("-").isdigit() for field in (fields[0], fields[1], fields[2], fields[4]))


def read_taobao(path: Path) -> RawLog:
    """Read a Taobao ``UserBehavior.csv`` (possibly ``.gz``/``.zst``).

    Parameters
    ----------
    path:
        The headerless five-column CSV file.

    Returns
    -------
    RawLog
        Events named by the behavior, no values; items with their category.
    """
    plain = scannable(path)
    fields = split_fields(scan_lines(plain, path), path, ",", FIELDS)
    user, user_check = checked_cast("user", pl.Int64(), "an integer user ID")
    item, item_check = checked_cast("item", pl.Int64(), "an integer item ID")
    timestamp, timestamp_check = checked_cast("timestamp", pl.Int64(), "integer unix seconds")
    known = f"a behavior ({', '.join(BEHAVIORS)})"
    behavior_check = Check(~pl.col("behavior").is_in(BEHAVIORS), "behavior", known)
    run_checks(fields, path, [behavior_check, user_check, item_check, timestamp_check])
    frame = fields.select(
        user.alias("user"),
        item.alias("item"),
        timestamp.alias("timestamp"),
        pl.col("behavior").alias("event"),
        pl.lit(None, dtype=pl.Float64).alias("value"),
        "line",
        "category",
    )
    # An item normally has one category; should the log disagree, every category seen is kept, in order.
    items = frame.group_by("item").agg(pl.col("category").unique(maintain_order=True).alias("categories"))
    return RawLog(
        interactions=interactions_table(frame, path),
        items=items_table(collect(items, path)),
        source=str(path),
        format="taobao",
    )
