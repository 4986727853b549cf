"""The contract between readers and the :class:`~intentrec.data.dataset.Dataset`.

Every reader, whatever the file format, turns its input into a :class:`RawLog`: a lazy interactions table
with fixed column names in the user's own IDs, plus an optional items table. The table stays lazy (a scan
of the user's file) until ``Dataset.from_raw`` collects it with polars' streaming engine, so a log larger
than memory never has to be held whole, only its encoded columns. Validation of the content
(nulls, empty logs) and the encoding into dense indices happen once, in ``Dataset.from_raw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import polars as pl

#: Columns of ``RawLog.interactions``, in this order, with these dtypes.
#: ``user`` and ``item`` keep the raw ID type of the source (Int64 or String).
#: ``timestamp`` is Unix seconds, or the position within the user's sequence when the source is order-only.
#: ``microsecond`` is the part of a second past ``timestamp`` (0 where the source counts whole seconds).
#: ``event`` names the interaction type ("rating", "tag", "pv", "buy", ...).
#: ``value`` is an explicit value such as a rating, null where the source has none.
#: ``file`` and ``line`` locate the row in its source (1-based line, header counted) for error messages;
#: together with the reading order they also break ties between equal timestamps.
INTERACTION_COLUMNS: dict[str, pl.DataType | None] = {
    "user": None,
    "item": None,
    "timestamp": pl.Int64(),
    "microsecond": pl.Int32(),
    "event": pl.String(),
    "value": pl.Float64(),
    "file": pl.String(),
    "line": pl.Int64(),
}

#: Columns every ``RawLog.items`` table has; readers may add more attribute columns after these.
ITEM_COLUMNS: dict[str, pl.DataType | None] = {
    "item": None,
    "title": pl.String(),
    "categories": pl.List(pl.String()),
}

TimestampKind = Literal["unix_seconds", "order"]


@dataclass(frozen=True)
class RawLog:
    """What a reader found in the user's files, before validation and encoding.

    Attributes
    ----------
    interactions:
        Lazy table with :data:`INTERACTION_COLUMNS`, rows in reading order (file order, files in the order
        they were read).
    items:
        Table with :data:`ITEM_COLUMNS` first, or ``None`` when the source has no item metadata.
    source:
        The path the user gave (or a built-in dataset name), used in messages and the dataset card.
    format:
        The reader that produced it, e.g. ``"movielens"`` or ``"sequence"``.
    timestamp_kind:
        ``"unix_seconds"`` for real times, ``"order"`` when the source only gives the order of events.
    """

    interactions: pl.LazyFrame
    items: pl.DataFrame | None
    source: str
    format: str
    timestamp_kind: TimestampKind = "unix_seconds"
