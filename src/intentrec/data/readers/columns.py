"""Column conversions shared by the readers: checked casts, raw IDs, timestamps and the RawLog table shapes.

Readers first read every field as text (so a stray letter never breaks polars' type inference), then
convert the columns they need here. A value that cannot be converted is reported with its file, line and
column; nothing is silently turned into a null.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import polars as pl

from intentrec.data.raw import INTERACTION_COLUMNS, ITEM_COLUMNS
from intentrec.errors import DataError, did_you_mean

#: Event name for sources that record that an interaction happened but not of which kind.
DEFAULT_EVENT = "interaction"

#: Start of an ISO 8601 date, the only datetime layout read without an explicit timestamp_format.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

_TIMESTAMP_EXPECTED = (
    "a timestamp: unix seconds, or an ISO 8601 datetime such as '2017-11-25 10:00:00' "
    "(give timestamp_format for other layouts)"
)


def require_columns(available: Sequence[str], wanted: Sequence[str], path: Path) -> None:
    """Raise a DataError naming the first of ``wanted`` missing from ``available``, with the nearest name."""
    for name in wanted:
        if name not in available:
            raise DataError(
                f"{path}: no column {name!r}; the columns are {', '.join(map(repr, available))}"
                f"{did_you_mean(name, available)}."
            )


def checked_cast(
    frame: pl.DataFrame, column: str, dtype: pl.DataType, path: Path, expected: str, what: str | None = None
) -> pl.Series:
    """``frame[column]`` cast to ``dtype``; a non-null value that does not convert is a DataError.

    ``frame`` must have the ``line`` column; the message names the first bad line, the value and
    ``expected`` (e.g. ``"an integer"``). ``what`` replaces ``"column 'name'"`` in the message.
    """
    source = frame[column]
    if source.dtype == pl.String:
        source = source.str.strip_chars()
    result = source.cast(dtype, strict=False)
    raise_first_bad(frame, column, source.is_not_null() & result.is_null(), path, expected, what)
    return result


def raise_first_bad(
    frame: pl.DataFrame, column: str, bad: pl.Series, path: Path, expected: str, what: str | None = None
) -> None:
    """If any row of ``bad`` is true, raise a DataError naming the first such row's line and value."""
    if not bad.any():
        return
    first = int(bad.arg_true()[0])
    value = frame[column][first]
    raise DataError(
        f"{path}:{frame['line'][first]}: {what or f'column {column!r}'}: {value!r} is not {expected} "
        f"({int(bad.sum())} such row(s) in all)."
    )


def raw_ids(frame: pl.DataFrame, column: str) -> pl.Series:
    """User or item IDs in their natural type: Int64 when that loses nothing, else String.

    Text IDs become integers only if every one of them round-trips exactly, so ``"007"`` or ``"A12"`` keep
    the whole column as strings and two different raw IDs can never collapse into one.
    """
    ids = frame[column]
    if ids.dtype.is_integer():
        return ids.cast(pl.Int64)
    ids = ids.cast(pl.String).str.strip_chars()
    as_int = ids.cast(pl.Int64, strict=False)
    lossless = as_int.null_count() == ids.null_count() and bool((as_int.cast(pl.String) == ids).all())
    return as_int if lossless else ids


def unix_seconds(
    frame: pl.DataFrame, column: str, path: Path, timestamp_format: str | None = None
) -> pl.Series:
    """Timestamps as Int64 unix seconds, from integers, floats (floored), datetimes or datetime text.

    Text is read as numbers when its first value is a number, else as datetimes: with ``timestamp_format``
    (strftime codes) when given, or in an ISO 8601 layout that polars recognises. Naive datetimes are taken
    as UTC. The first value that does not parse is reported with its line.
    """
    source = frame[column]
    if source.dtype == pl.Datetime or source.dtype == pl.Date:
        return (
            source.cast(pl.Datetime("us")).dt.epoch("s") if source.dtype == pl.Date else source.dt.epoch("s")
        )
    if source.dtype.is_integer():
        return source.cast(pl.Int64)
    if source.dtype.is_float():
        return _floored(source)

    text = source.cast(pl.String).str.strip_chars()
    present = text.drop_nulls()
    if present.len() == 0:
        return text.cast(pl.Int64)  # all null: the Dataset reports the missing values with their lines
    if timestamp_format is None and present[:1].cast(pl.Float64, strict=False).is_not_null().all():
        seconds = pl.select(
            pl.coalesce(text.cast(pl.Int64, strict=False), _floored(text.cast(pl.Float64, strict=False)))
        ).to_series()
    else:
        seconds = _parse_datetimes(frame.with_columns(text.alias(column)), column, path, timestamp_format)
    raise_first_bad(frame, column, text.is_not_null() & seconds.is_null(), path, _TIMESTAMP_EXPECTED)
    return seconds


def _floored(values: pl.Series) -> pl.Series:
    # NaN and infinities fail the cast and stay null, so the caller reports them.
    return values.floor().cast(pl.Int64, strict=False)


def _parse_datetimes(frame: pl.DataFrame, column: str, path: Path, timestamp_format: str | None) -> pl.Series:
    text = frame[column]
    if timestamp_format is not None and "%H" in timestamp_format and "%M" not in timestamp_format:
        # polars (chrono) refuses an hour without minutes, e.g. Tianchi's "2014-12-06 02" with "%Y-%m-%d %H":
        # append zero minutes to both the values and the format.
        text, timestamp_format = text + ":00", timestamp_format + ":%M"
    first = frame.filter(pl.col(column).is_not_null()).row(0, named=True)
    not_understood = DataError(
        f"{path}:{first['line']}: column {column!r}: {first[column]!r} is not {_TIMESTAMP_EXPECTED}."
    )
    # Without a format only ISO 8601 is accepted: polars would also guess "01/02/2017" as day-first, and a
    # silent day/month swap is worse than asking for the format.
    if timestamp_format is None and not _ISO_DATE.match(first[column]):
        raise not_understood
    try:
        parsed = text.str.to_datetime(timestamp_format, strict=False, time_unit="us")
    except pl.exceptions.ComputeError as error:
        if timestamp_format is None:
            raise not_understood from None
        raise DataError(
            f"{path}: timestamp_format {timestamp_format!r} cannot be used for column {column!r}: "
            f"{str(error).splitlines()[0]}"
        ) from None
    return parsed.dt.epoch("s")


def order_within_user(frame: pl.DataFrame) -> pl.Series:
    """0, 1, 2, ... for each user's rows in reading order: the timestamp of an order-only log."""
    return frame.select(pl.int_range(pl.len(), dtype=pl.Int64).over("user")).to_series()


def interactions_table(frame: pl.DataFrame, path: Path) -> pl.DataFrame:
    """The :data:`~intentrec.data.raw.INTERACTION_COLUMNS` of ``frame``, in order, with their dtypes.

    ``frame`` has ``user, item, timestamp, event, value, line``; ``file`` is set to ``path`` as given.
    """
    frame = frame.with_columns(pl.lit(str(path), dtype=pl.String).alias("file"))
    return frame.select(
        pl.col(name) if dtype is None else pl.col(name).cast(dtype)
        for name, dtype in INTERACTION_COLUMNS.items()
    )


def items_table(frame: pl.DataFrame) -> pl.DataFrame:
    """An items table: :data:`~intentrec.data.raw.ITEM_COLUMNS` first, one row per item (first one wins).

    Missing ``title`` or ``categories`` columns are added as nulls and empty lists; repeated categories of
    an item are kept once, in first-seen order.
    """
    if "title" not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=pl.String).alias("title"))
    if "categories" not in frame.columns:
        frame = frame.with_columns(pl.lit([], dtype=pl.List(pl.String)).alias("categories"))
    frame = frame.with_columns(
        pl.col("categories")
        .cast(pl.List(pl.String))
        .fill_null(pl.lit([], dtype=pl.List(pl.String)))
        .list.unique(maintain_order=True)  # categories are a set (LastFM's attribute lists repeat tags)
    )
    first = [
        pl.col(name) if dtype is None else pl.col(name).cast(dtype) for name, dtype in ITEM_COLUMNS.items()
    ]
    rest = [name for name in frame.columns if name not in ITEM_COLUMNS]
    return frame.select(*first, *rest).unique(subset="item", keep="first", maintain_order=True)


def split_categories(text: pl.Expr, separator: str, ignore: Sequence[str] = ()) -> pl.Expr:
    """A ``separator``-joined text column as a list of category names, dropping blanks and ``ignore``."""
    parts = text.str.split(separator).list.eval(pl.element().str.strip_chars())
    return parts.list.eval(pl.element().filter((pl.element() != "") & ~pl.element().is_in(list(ignore))))
