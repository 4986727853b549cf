"""RecBole atomic files (Zhao et al., CIKM 2021): ``name.inter`` and optionally ``name.item``.

Atomic files are tab-separated, unquoted, with a typed header such as
``user_id:token	item_id:token	rating:float	timestamp:float``. Types are ``token`` (an ID), ``float``,
and ``token_seq``/``float_seq`` (space-separated lists). We use RecBole's default field names:
``user_id``, ``item_id``, ``rating`` (the value, and then the event is ``"rating"``) and ``timestamp``
(without it, the log is order-only: each user's rows in file order). Item titles come from a ``*title``
field and categories from a ``genre``/``genres``/``categories``/``class`` ``token_seq`` field.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from intentrec.data.raw import RawLog
from intentrec.data.readers.columns import (
    DEFAULT_EVENT,
    Check,
    checked_cast,
    checked_user_and_item,
    ids_are_integers,
    interactions_table,
    items_table,
    order_within_user,
    raw_ids,
    require_columns,
    run_checks,
    split_categories,
    unix_seconds,
)
from intentrec.data.readers.files import (
    collect,
    csv_header,
    find_file,
    plain_file,
    scan_csv,
    scannable,
    strip_compression,
)
from intentrec.errors import DataError

#: Field types RecBole defines.
FIELD_TYPES = ("token", "token_seq", "float", "float_seq")

#: RecBole's default names for the interaction fields we use.
USER_FIELD, ITEM_FIELD, RATING_FIELD, TIME_FIELD = "user_id", "item_id", "rating", "timestamp"

#: Item fields that hold categories, in order of preference.
CATEGORY_FIELDS = ("genre", "genres", "categories", "class")


def inter_files(folder: Path) -> list[Path]:
    """The ``.inter`` files (plain or compressed) in ``folder``, sorted by name."""
    return sorted(child for child in folder.iterdir() if strip_compression(child.name).endswith(".inter"))


def read_recbole(path: Path) -> RawLog:
    """Read a RecBole dataset folder or ``.inter`` file, with the ``.item`` file of the same name if any.

    Parameters
    ----------
    path:
        ``name.inter`` (possibly ``.gz``/``.zst``), or a folder holding one (RecBole's layout is
        ``name/name.inter``; that one is preferred when the folder holds several).

    Returns
    -------
    RawLog
        Interactions with raw IDs (Int64 when every token is a plain integer, else String).
    """
    inter_path = path if path.is_file() else _inter_in_folder(path)
    plain = scannable(inter_path)
    table, fields = _scan_atomic(inter_path, plain)
    require_columns(list(fields), [USER_FIELD, ITEM_FIELD], inter_path)

    checks: list[Check] = []
    if RATING_FIELD in fields:
        value, value_check = checked_cast(RATING_FIELD, pl.Float64(), "a number (the rating)")
        event, checks = pl.lit(RATING_FIELD), [value_check]
    else:
        value, event = pl.lit(None, dtype=pl.Float64), pl.lit(DEFAULT_EVENT)
    if TIME_FIELD in fields:
        timestamp, microsecond, timestamp_checks = unix_seconds(
            table, TIME_FIELD, inter_path, format_settable=False
        )
        checks += timestamp_checks
        timestamp_kind = "unix_seconds"
    else:
        timestamp, microsecond, timestamp_kind = order_within_user(USER_FIELD), pl.lit(0), "order"
    user, item = checked_user_and_item(table, inter_path, USER_FIELD, ITEM_FIELD, checks)
    frame = table.select(
        user,
        item,
        timestamp.alias("timestamp"),
        microsecond.alias("microsecond"),
        event.alias("event"),
        value.alias("value"),
        "line",
    )

    stem = strip_compression(inter_path.name).removesuffix(".inter")
    item_path = find_file(inter_path.parent, stem + ".item")
    return RawLog(
        interactions=interactions_table(frame, inter_path),
        items=_read_items(item_path) if item_path else None,
        source=str(path),
        format="recbole",
        timestamp_kind=timestamp_kind,
    )


def _inter_in_folder(folder: Path) -> Path:
    candidates = inter_files(folder)
    preferred = [child for child in candidates if strip_compression(child.name) == folder.name + ".inter"]
    if preferred:
        return preferred[0]
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(f"{folder}: no RecBole .inter file here.")
    names = ", ".join(child.name for child in candidates)
    raise DataError(f"{folder}: several .inter files ({names}); pass the one to read.")


def _scan_atomic(path: Path, plain: Path) -> tuple[pl.LazyFrame, dict[str, str]]:
    """An atomic file, lazily, with its columns renamed to the bare field names, and each field's type."""
    header = csv_header(path, "\t", quote_char=None)
    fields: dict[str, str] = {}
    for column in header:
        name, _, kind = column.strip().rpartition(":")
        if not name or kind not in FIELD_TYPES:
            raise DataError(
                f"{path}:1: header field {column!r} is not 'name:type' with type one of "
                f"{', '.join(FIELD_TYPES)} (RecBole headers look like 'user_id:token')."
            )
        if name in fields:
            raise DataError(f"{path}:1: the field {name!r} appears twice in the header.")
        fields[name] = kind
    table = scan_csv(plain, path, "\t", quote_char=None)
    return table.rename(dict(zip(header, fields, strict=True))), fields


def _read_items(path: Path) -> pl.DataFrame:
    with plain_file(path) as plain:
        scanned, fields = _scan_atomic(path, plain)
        table = collect(scanned, path).lazy()
    require_columns(list(fields), [ITEM_FIELD], path)
    facts = run_checks(table, path, [], {"item": ids_are_integers(table, ITEM_FIELD)})
    columns = [raw_ids(table, ITEM_FIELD, facts["item"]).alias("item")]
    title = next((name for name in fields if name.endswith("title")), None)
    if title is not None:
        columns.append(pl.col(title).alias("title"))
    category = next((name for name in CATEGORY_FIELDS if name in fields), None)
    if category is not None:
        columns.append(split_categories(pl.col(category), " ").alias("categories"))
    return items_table(table.select(columns).collect())
