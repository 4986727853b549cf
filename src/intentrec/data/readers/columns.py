"""Column conversions shared by the readers: checked casts, raw IDs, timestamps and the RawLog table shapes.

Readers scan every field as text (so a stray letter never breaks polars' type inference), then convert
the columns they need with the expressions made here. Each conversion comes with a :class:`Check`;
:func:`run_checks` runs a reader's checks together in one streaming pass over the file, so a log larger
than memory is validated without being loaded. A value that cannot be converted is reported with its file,
line and column; nothing is silently turned into a null.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from intentrec.data.raw import INTERACTION_COLUMNS, ITEM_COLUMNS
from intentrec.data.readers.files import collect
from intentrec.errors import DataError, did_you_mean

#: Event name for sources that record that an interaction happened but not of which kind.
DEFAULT_EVENT = "interaction"

#: Start of an ISO 8601 date, the only datetime layout read without an explicit timestamp_format.
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}")

_TIMESTAMP_EXPECTED = (
    "a timestamp: unix seconds, or an ISO 8601 datetime such as '2017-11-25 10:00:00' in the layout of "
    "the column's first value, all with or all without a UTC offset"
)
_FORMAT_HINT = " (give timestamp_format for other layouts)"


def require_columns(available: Sequence[str], wanted: Sequence[str], path: Path) -> None:
    """Raise a DataError naming the first of ``wanted`` missing from ``available``, with the nearest name."""
    for name in wanted:
        if name not in available:
            raise DataError(
                f"{path}: no column {name!r}; the columns are {', '.join(map(repr, available))}"
                f"{did_you_mean(name, available)}."
            )


@dataclass(frozen=True)
class Check:
    """A rule every row must pass: rows where ``bad`` is true fail it.

    The message names the first failing row's line and its value in ``column``, says it is not
    ``expected``, and counts the failing rows. ``what`` replaces ``"column 'name'"`` in the message.
    """

    bad: pl.Expr
    column: str
    expected: str
    what: str | None = None


def run_checks(
    frame: pl.LazyFrame, path: Path, checks: Sequence[Check], facts: Mapping[str, pl.Expr] | None = None
) -> dict[str, Any]:
    """Run ``checks`` over ``frame`` (with its ``line`` column) and compute ``facts``, in one streaming pass.

    ``facts`` are aggregate expressions (e.g. :func:`ids_are_integers`) a reader needs before it can say
    how to convert a column; their values are returned by name. Raises a DataError for the first check, in
    order, that a row fails.
    """
    aggregates = [expression.alias(f"fact_{name}") for name, expression in (facts or {}).items()]
    for index, check in enumerate(checks):
        aggregates += [
            check.bad.sum().alias(f"failing_{index}"),
            pl.col("line").filter(check.bad).first().alias(f"line_{index}"),
            pl.col(check.column).filter(check.bad).first().cast(pl.String).alias(f"value_{index}"),
        ]
    if not aggregates:
        return {}
    found = collect(frame.select(aggregates), path).row(0, named=True)
    for index, check in enumerate(checks):
        if found[f"failing_{index}"]:
            raise DataError(
                f"{path}:{found[f'line_{index}']}: {check.what or f'column {check.column!r}'}: "
                f"{found[f'value_{index}']!r} is not {check.expected} "
                f"({found[f'failing_{index}']} such row(s) in all)."
            )
    return {name: found[f"fact_{name}"] for name in facts or {}}


def checked_cast(
    column: str, dtype: pl.DataType, expected: str, what: str | None = None
) -> tuple[pl.Expr, Check]:
    """``column`` cast to ``dtype`` (text stripped first), and the check that no value failed to convert.

    A null stays null (the Dataset reports missing values); a value that does not convert fails the check
    rather than silently becoming a null, and so does NaN or infinity for a float ``dtype`` (a NaN rating
    would pass every rating filter: NaN sorts above every number).
    """
    source = pl.col(column).cast(pl.String).str.strip_chars() if dtype != pl.String else pl.col(column)
    result = source.cast(dtype, strict=False)
    failed = result.is_null() | ~result.is_finite() if dtype.is_float() else result.is_null()
    return result, Check(source.is_not_null() & failed, column, expected, what)


def ids_are_integers(frame: pl.LazyFrame, column: str) -> pl.Expr:
    """Fact for :func:`run_checks`: whether every ID in ``column`` is an integer that reads back the same.

    Text IDs become integers only if every one of them round-trips exactly, so ``"007"`` or ``"A12"`` keep
    the whole column as strings and two different raw IDs can never collapse into one.
    """
    dtype = frame.collect_schema()[column]
    if dtype.is_integer():  # UInt64 may hold IDs past Int64's largest
        return (
            pl.lit(True)
            if dtype != pl.UInt64
            else (pl.col(column).is_null() | (pl.col(column) < 2**63)).all()
        )
    if dtype.is_float():  # whole numbers stored as floats (a column with gaps, through pandas): 7.0 is 7
        value = pl.col(column)
        whole = value.is_finite() & (value == value.floor()) & (value.abs() < 2**63)
        return (value.is_null() | value.is_nan() | whole).all()
    ids = pl.col(column).cast(pl.String).str.strip_chars()
    round_trips = (ids.cast(pl.Int64, strict=False).cast(pl.String) == ids).fill_null(False)
    return (ids.is_null() | round_trips).all()


def checked_user_and_item(
    table: pl.LazyFrame, path: Path, user: str, item: str, checks: Sequence[Check]
) -> tuple[pl.Expr, pl.Expr]:
    """Run a log's ``checks`` in one pass that also learns the ID types; the ``user`` and ``item`` columns.

    An ID spanning lines is refused: a quote left open in a CSV swallows the rows up to the next quote
    into one field, which would otherwise read as an ID and lose those rows without a word.
    """
    schema = table.collect_schema()
    one_line = [
        Check(pl.col(column).str.contains("\n"), column, "an ID on one line (a quote left open before it?)")
        for column in (user, item)
        if schema[column] == pl.String
    ]
    facts = run_checks(
        table,
        path,
        [*checks, *one_line],
        {"user": ids_are_integers(table, user), "item": ids_are_integers(table, item)},
    )
    return (
        raw_ids(table, user, facts["user"]).alias("user"),
        raw_ids(table, item, facts["item"]).alias("item"),
    )


def raw_ids(frame: pl.LazyFrame, column: str, as_integers: bool) -> pl.Expr:
    """User or item IDs in their natural type: Int64 when :func:`ids_are_integers` said so, else String."""
    dtype = frame.collect_schema()[column]
    ids = pl.col(column).fill_nan(None) if dtype.is_float() else pl.col(column)  # NaN: a missing ID
    if (dtype.is_integer() or dtype.is_float()) and as_integers:
        return ids.cast(pl.Int64)
    text = ids.cast(pl.String).str.strip_chars()
    return text.cast(pl.Int64) if as_integers else text


def unix_seconds(
    frame: pl.LazyFrame,
    column: str,
    path: Path,
    timestamp_format: str | None = None,
    format_settable: bool = True,
) -> tuple[pl.Expr, pl.Expr, list[Check]]:
    """Timestamps as Int64 unix seconds, from integers, floats (floored), datetimes or datetime text.

    Text is read as numbers when its first value is a number, else as datetimes: with ``timestamp_format``
    (strftime codes) when given, or in an ISO 8601 layout that polars recognises. Naive datetimes are taken
    as UTC. Returns the seconds, the microseconds past each second (0 where the source counts whole
    seconds; they order events within a second and tell repeats apart) and the check that every value
    parsed (run it with :func:`run_checks`). ``format_settable=False``: the source's format has no
    ``timestamp_format`` to give, so the error messages do not suggest one.
    """
    dtype = frame.collect_schema()[column]
    source = pl.col(column)
    if dtype == pl.Date:
        return source.cast(pl.Datetime("us")).dt.epoch("s"), _WHOLE_SECONDS, []
    if dtype == pl.Datetime:
        return *_split_microseconds(source.dt.epoch("us")), []
    if dtype.is_integer():
        return source.cast(pl.Int64), _WHOLE_SECONDS, []
    if dtype.is_float():
        return _floored(source), _fraction_in_microseconds(source), []

    text = source.cast(pl.String).str.strip_chars()
    first = collect(frame.select("line", text.alias(column)).drop_nulls(column).head(1), path)
    if first.height == 0:  # all null: the Dataset reports the missing values with their lines
        return text.cast(pl.Int64), _WHOLE_SECONDS, []
    line, first_value = first.row(0)
    layouts = _TIMESTAMP_EXPECTED + (_FORMAT_HINT if format_settable else "")
    if timestamp_format is None and is_number(first_value):
        as_float = text.cast(pl.Float64, strict=False)
        seconds = pl.coalesce(text.cast(pl.Int64, strict=False), _floored(as_float))
        microseconds = _fraction_in_microseconds(as_float)  # 0 for integer text, exact or too large
    else:
        epoch = _parse_datetimes(text, column, path, timestamp_format, (line, first_value), layouts)
        seconds, microseconds = _split_microseconds(epoch)
    expected = layouts if timestamp_format is None else f"a timestamp in {timestamp_format!r}"
    return seconds, microseconds, [Check(text.is_not_null() & seconds.is_null(), column, expected)]


_WHOLE_SECONDS = pl.lit(0, dtype=pl.Int32)


def _floored(values: pl.Expr) -> pl.Expr:
    # NaN and infinities fail the cast and stay null, so they are reported.
    return values.floor().cast(pl.Int64, strict=False)


def _fraction_in_microseconds(values: pl.Expr) -> pl.Expr:
    fraction = ((values - values.floor()) * 1_000_000).round().cast(pl.Int64, strict=False)
    return fraction.clip(0, 999_999)  # 0.9999999 s rounds up to a whole second; it stays in its own


def _split_microseconds(epoch_microseconds: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    seconds = epoch_microseconds // 1_000_000  # floor division: before 1970 too
    return seconds, epoch_microseconds - seconds * 1_000_000


def is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parse_datetimes(
    text: pl.Expr,
    column: str,
    path: Path,
    timestamp_format: str | None,
    first: tuple[int, str],
    layouts: str,
) -> pl.Expr:
    """Microseconds since the epoch, UTC; ``layouts`` says what is read without a format."""
    line, first_value = first
    if timestamp_format is not None and "%H" in timestamp_format and "%M" not in timestamp_format:
        # polars (chrono) refuses an hour without minutes, e.g. Tianchi's "2014-12-06 02" with "%Y-%m-%d %H":
        # append zero minutes to both the values and the format.
        text, timestamp_format = text + ":00", timestamp_format + ":%M"
        first_value += ":00"
    not_understood = DataError(f"{path}:{line}: column {column!r}: {first[1]!r} is not {layouts}.")
    # Without a format only ISO 8601 is accepted: polars would also guess "01/02/2017" as day-first, and a
    # silent day/month swap is worse than asking for the format.
    if timestamp_format is None and not _ISO_DATE.match(first_value):
        raise not_understood

    # Naive times are taken as UTC; times with an offset are converted to UTC.
    def parse(values: pl.Expr) -> pl.Expr:
        return values.str.to_datetime(timestamp_format, strict=False, time_unit="us", time_zone="UTC")

    try:  # a format polars cannot use fails on the first value already, before any pass over the file
        pl.select(parse(pl.lit(first_value)))
    except pl.exceptions.ComputeError as error:
        if timestamp_format is None:
            raise not_understood from None
        raise DataError(
            f"{path}: timestamp_format {timestamp_format!r} cannot be used for column {column!r}: "
            f"{str(error).splitlines()[0]}"
        ) from None
    return parse(text).dt.epoch("us")


def order_within_user(user: str = "user") -> pl.Expr:
    """0, 1, 2, ... for each user's rows in reading order: the timestamp of an order-only log."""
    return pl.int_range(pl.len(), dtype=pl.Int64).over(user)


def interactions_table(frame: pl.LazyFrame, path: Path) -> pl.LazyFrame:
    """The :data:`~intentrec.data.raw.INTERACTION_COLUMNS` of ``frame``, in order, with their dtypes.

    ``frame`` has ``user, item, timestamp, event, value, line`` and may have ``microsecond`` (else 0);
    ``file`` is set to ``path`` as given.
    """
    frame = frame.with_columns(pl.lit(str(path), dtype=pl.String).alias("file"))
    if "microsecond" not in frame.collect_schema():
        frame = frame.with_columns(_WHOLE_SECONDS.alias("microsecond"))
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


def split_categories(text: pl.Expr, separator: str, ignore: Sequence[str] = (), quotes: str = "") -> pl.Expr:
    """A ``separator``-joined text column as a list of category names, dropping blanks and ``ignore``;
    whitespace and ``quotes`` around each name are stripped."""
    around = (string.whitespace + quotes) if quotes else None  # None: whitespace
    parts = text.str.split(separator).list.eval(pl.element().str.strip_chars(around))
    return parts.list.eval(pl.element().filter((pl.element() != "") & ~pl.element().is_in(list(ignore))))
