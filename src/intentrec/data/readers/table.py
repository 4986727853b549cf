"""Any other interaction table: CSV, TSV or Parquet with a header, or JSON Lines (one object per line, such as
Amazon's review dumps), described by a :class:`ColumnMapping`.

Columns with obvious names need no mapping (``user_id``, ``itemId``, ``timestamp``, ``rating``, ...; see
:data:`OBVIOUS_NAMES`, matched case-insensitively). A user, an item and a timestamp column are required.
Without an event column every row is a ``"rating"`` event when there is a value column, else an
``"interaction"``. Timestamps may be unix seconds (integers or floats) or datetimes: ISO 8601 text is
recognised, any other layout needs ``timestamp_format``.

For example, the Tianchi mobile log (``user_id,item_id,behavior_type,user_geohash,item_category,time`` with
times like ``2014-12-06 02``) reads with::

    ColumnMapping(event="behavior_type", categories="item_category", timestamp_format="%Y-%m-%d %H")
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
from pydantic import Field

from intentrec.data.raw import RawLog
from intentrec.data.readers.columns import (
    DEFAULT_EVENT,
    checked_cast,
    checked_user_and_item,
    interactions_table,
    is_number,
    items_table,
    require_columns,
    split_categories,
    unix_seconds,
)
from intentrec.data.readers.files import (
    collect,
    csv_header,
    head_lines,
    plain_file,
    scan_csv,
    scan_lines,
    scannable,
    sniff_separator,
    strip_compression,
)
from intentrec.errors import DataError, did_you_mean
from intentrec.settings import Settings

#: Column names recognised without a mapping, per role (compared case-insensitively).
#: Amazon's review dumps (2014, 2018) name theirs reviewerID, asin, unixReviewTime and overall.
OBVIOUS_NAMES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userId", "reviewerID"),
    "item": ("item", "item_id", "itemId", "movieId", "asin"),
    "timestamp": ("timestamp", "time", "ts", "unixReviewTime"),
    "event": ("event", "event_type", "behavior"),
    "value": ("rating", "value", "overall"),
}

#: Roles a table must provide.
REQUIRED_ROLES = ("user", "item", "timestamp")

#: File name suffixes (after any compression suffix) read as tables.
TABLE_SUFFIXES = (".csv", ".tsv", ".parquet", ".jsonl", ".ndjson")

#: Suffixes of tables whose values carry their own types (read as they are, not as text); ``.json`` is
#: read as JSON Lines too (Amazon's review dumps are named so), but not looked for in folders.
_TYPED_SUFFIXES = (".parquet", ".jsonl", ".ndjson", ".json")


class ColumnMapping(Settings):
    """Which column of a generic table holds what; ``None`` means "find the obvious name"."""

    user: str | None = Field(None, description="Column with the user ID.")
    item: str | None = Field(None, description="Column with the item ID.")
    timestamp: str | None = Field(None, description="Column with the time (unix seconds or datetime).")
    event: str | None = Field(None, description="Column with the interaction type (click, buy, ...).")
    value: str | None = Field(None, description="Column with an explicit value such as a rating.")
    categories: str | None = Field(None, description="Column with the item's categories (never guessed).")
    categories_separator: str | None = Field(
        None,
        description="Separator within the categories column, e.g. '|'; None: one category per cell, or the "
        'elements of a cell written as a list, ["a", "b"].',
    )
    timestamp_format: str | None = Field(
        None, description="strftime layout of datetime text, e.g. '%d/%m/%Y %H:%M'; None: ISO 8601."
    )


def read_table(path: Path, columns: ColumnMapping | None = None) -> RawLog:
    """Read a generic CSV/TSV/Parquet/JSON Lines interaction table.

    Parameters
    ----------
    path:
        A ``.csv``, ``.tsv`` or ``.parquet`` file with a header row, or a ``.jsonl``/``.ndjson`` file with
        one JSON object per line (also ``.json``; each possibly ``.gz``/``.zst``). A CSV's
        separator is sniffed from its header (comma, tab, semicolon or pipe).
    columns:
        Which column holds what; roles left at ``None`` are looked up in :data:`OBVIOUS_NAMES`.

    Returns
    -------
    RawLog
        Interactions with raw IDs (Int64 when every ID is a plain integer, else String); items with their
        categories when a categories column is mapped. ``line`` is the 1-based line in the file (a text
        table's header is line 1; blank lines count), the 1-based row for Parquet.
    """
    mapping = columns or ColumnMapping()
    plain = scannable(path)
    suffix = Path(strip_compression(path.name)).suffix.lower()
    typed = suffix in _TYPED_SUFFIXES
    if typed:
        json_lines = suffix != ".parquet"
        # JSON Lines: every line's keys and types, not the first hundred's (a key first seen late is a column)
        table = pl.scan_ndjson(plain, infer_schema_length=None) if json_lines else pl.scan_parquet(plain)
        available = _typed_columns(table, path, json_lines)
    else:
        separator = "\t" if suffix == ".tsv" else _sniff(path)
        available = csv_header(path, separator)
    roles = _resolve(mapping, available, path)
    needed = list(dict.fromkeys(name for name in roles.values() if name is not None))
    if "line" in needed:  # the name the reader gives each row's line number
        raise DataError(f"{path}: a column named 'line' cannot be read; rename it (e.g. to 'line_id').")
    if typed:
        _check_types(table.collect_schema(), roles, path)
        if json_lines:  # polars skips blank lines: each row's number is its line among the file's lines
            lines = scan_lines(plain, path).select("line")
            table = pl.concat([table.select(needed), lines], how="horizontal")
        else:
            table = table.select(needed).with_row_index("line", offset=1)
            table = table.with_columns(pl.col("line").cast(pl.Int64))
        if collect(table.head(1), path).height == 0:
            raise DataError(f"{path}: the table has no rows.")
    else:
        table = scan_csv(plain, path, separator, columns=needed)

    user, item, categories = roles["user"], roles["item"], roles["categories"]
    timestamp, microsecond, checks = unix_seconds(table, roles["timestamp"], path, mapping.timestamp_format)
    value = pl.lit(None, dtype=pl.Float64)
    if roles["value"] is not None:
        value, value_check = checked_cast(roles["value"], pl.Float64(), "a number")
        checks.append(value_check)
    # without an event column, a value makes every row a rating
    event = pl.lit("rating" if roles["value"] is not None else DEFAULT_EVENT)
    if roles["event"] is not None:
        event = pl.col(roles["event"]).cast(pl.String)
    frame = table.select(
        *checked_user_and_item(table, path, user, item, checks),
        timestamp.alias("timestamp"),
        microsecond.alias("microsecond"),
        value.alias("value"),
        event.alias("event"),
        "line",
        *([_categories(table, categories, mapping.categories_separator)] if categories else []),
    )
    items = None
    if categories is not None:
        # one row per item (small however long the log is), with the first categories a row gives it: a
        # row with the cell empty leaves them to the item's later rows
        described = pl.col("categories").filter(pl.col("categories").list.len() > 0).first()
        items = items_table(collect(frame.group_by("item", maintain_order=True).agg(described), path))
    return RawLog(
        interactions=interactions_table(frame, path),
        items=items,
        source=str(path),
        format="table",
    )


def _typed_columns(table: pl.LazyFrame, path: Path, json_lines: bool) -> list[str]:
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty.")
    try:
        return table.collect_schema().names()
    except pl.exceptions.PolarsError as error:
        if json_lines:
            _raise_bad_json_line(path)
        raise DataError(f"{path}: cannot read the file: {str(error).strip().splitlines()[0]}") from None


def _raise_bad_json_line(path: Path) -> None:
    """Name the first line that is not one JSON object; line by line, but only once polars has failed."""
    with plain_file(path) as plain, open(plain, encoding="utf-8", errors="replace") as text:
        for number, line in enumerate(map(str.strip, text), 1):
            if not line:
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as error:
                raise DataError(
                    f"{path}:{number}: not valid JSON ({error.msg} at column {error.colno}); each line "
                    "must be one JSON object."
                ) from None
            if not isinstance(value, dict):
                raise DataError(f"{path}:{number}: each line must be one JSON object, not {line[:40]!r}.")


def _check_types(schema: pl.Schema, roles: dict[str, str | None], path: Path) -> None:
    """A DataError for a role whose column holds lists, structs, durations or bytes: no ID, time or rating
    reads from those (categories alone may be a list of text)."""
    for role, column in roles.items():
        if column is None:
            continue
        dtype = schema[column]
        nested_text = role == "categories" and isinstance(dtype, pl.List) and dtype.inner == pl.String
        if (dtype.is_nested() and not nested_text) or dtype in (pl.Duration, pl.Binary, pl.Object):
            raise DataError(f"{path}: column {column!r} holds {dtype}, which cannot be read as the {role}.")


def _sniff(path: Path) -> str:
    first = head_lines(path, 1)
    if not first:
        raise DataError(f"{path}: the file is empty.")
    return sniff_separator(first[0])


def _resolve(mapping: ColumnMapping, available: list[str], path: Path) -> dict[str, str | None]:
    """The column for each role: the mapped one (which must exist), else an obvious name no role is
    mapped to, else None. A column is one role's: two roles mapped to one column is an error."""
    lowered = {name.lower(): name for name in available}
    # names as the header gives them, blanks around them stripped (as csv_header strips the header's)
    roles = {role: _stripped(getattr(mapping, role)) for role in (*OBVIOUS_NAMES, "categories")}
    mapped: dict[str, list[str]] = {}
    for role, given in roles.items():
        if given is not None:
            require_columns(available, [given], path)
            mapped.setdefault(given, []).append(role)
    for column, its_roles in mapped.items():
        if len(its_roles) > 1:
            raise DataError(
                f"{path}: column {column!r} is given {len(its_roles)} roles ({', '.join(its_roles)}); "
                "a column holds one of them."
            )
    for role, given in roles.items():
        if given is None:
            roles[role] = next(
                (
                    lowered[name.lower()]
                    for name in OBVIOUS_NAMES.get(role, ())
                    if name.lower() in lowered and lowered[name.lower()] not in mapped
                ),
                None,
            )
    for role in REQUIRED_ROLES:
        if roles[role] is None:
            raise DataError(_missing_role_message(role, available, path))
    return roles


def _stripped(name: str | None) -> str | None:
    return name.strip() if name is not None else None


def _missing_role_message(role: str, available: list[str], path: Path) -> str:
    hint = next(filter(None, (did_you_mean(name, available) for name in OBVIOUS_NAMES[role])), "")
    message = (
        f"{path}: no column for the {role}; the columns are {', '.join(map(repr, available))}{hint}. "
        f"Name it with --columns {role}=NAME on the command line, or ColumnMapping({role}='NAME') in Python."
    )
    if all(is_number(name) for name in available):
        message += " The first line looks like data: a table needs a header row naming its columns."
    return message


def _categories(table: pl.LazyFrame, column: str, separator: str | None) -> pl.Expr:
    """A categories column as List[String]: lists as they are, text split on ``separator``; without one, a
    cell written as a list (``["Skin", "Face"]``, or Python's ``['Skin', 'Face']``) gives its elements
    (split on commas, so an element holding a comma is cut in two), any other cell is one category."""
    if isinstance(table.collect_schema()[column], pl.List):
        return pl.col(column).cast(pl.List(pl.String)).alias("categories")
    text = pl.col(column).cast(pl.String).str.strip_chars()
    if separator is not None:
        return split_categories(text, separator).alias("categories")
    listed = text.str.starts_with("[") & text.str.ends_with("]")
    elements = split_categories(text.str.strip_prefix("[").str.strip_suffix("]"), ",", quotes="\"'")
    return pl.when(listed).then(elements).when(text != "").then(pl.concat_list(text)).alias("categories")
