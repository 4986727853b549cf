"""Pre-split sequence files as published with SASRec (Kang & McAuley, ICDM 2018) and S3-Rec (Zhou et al.,
CIKM 2020): ``Name.txt`` has one line per user, ``user item1 item2 ...``, oldest first, integer IDs.

These files keep the order of a user's items but not their times, so the log is order-only:
``timestamp`` is the item's position in the user's line (0 for the first). S3-Rec ships item attributes
next to it as ``Name_item2attributes.json`` (``{"item_id": [attr_id, ...]}``); they become the items'
categories, as strings.
"""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from intentrec.data.raw import RawLog
from intentrec.data.readers.columns import (
    DEFAULT_EVENT,
    checked_cast,
    interactions_table,
    items_table,
    order_within_user,
    run_checks,
)
from intentrec.data.readers.files import (
    find_file,
    first_invalid_utf8,
    read_bytes,
    scan_lines,
    scannable,
    strip_compression,
)
from intentrec.errors import DataError

#: What every token of a sequence line must be, for messages.
_EXPECTED = "an integer (a line is 'user item1 item2 ...')"

#: Suffix of the S3-Rec attribute file next to ``Name.txt``.
ATTRIBUTES_SUFFIX = "_item2attributes.json"


def looks_like_sequences(line: str) -> bool:
    """Whether a text line has the shape of a sequence line: at least two integer tokens."""
    tokens = line.split()
    return len(tokens) >= 2 and all(token.isdigit() for token in tokens)


def attributes_path(path: Path) -> Path | None:
    """The ``Name_item2attributes.json`` (plain or compressed) next to ``Name.txt``, or ``None``."""
    stem = strip_compression(path.name).removesuffix(".txt")
    return find_file(path.parent, stem + ATTRIBUTES_SUFFIX)


def read_sequences(path: Path) -> RawLog:
    """Read a ``user item1 item2 ...`` sequence file, with the S3-Rec attributes next to it if any.

    Parameters
    ----------
    path:
        The ``.txt`` file (possibly ``.gz``/``.zst``). Tokens are separated by any whitespace.

    Returns
    -------
    RawLog
        Order-only ``"interaction"`` events; ``line`` is the user's line, ``timestamp`` the position in it.
    """
    plain = scannable(path)
    tokens = pl.col("text").str.extract_all(r"\S+")
    lines = scan_lines(plain, path).select("line", user=tokens.list.first(), item=tokens.list.slice(1))
    user, user_check = checked_cast("user", pl.Int64(), _EXPECTED, what="user ID (the first token)")
    run_checks(lines, path, [user_check])
    # a line with a user and no items adds no events
    events = lines.explode("item").filter(pl.col("item").is_not_null())
    item, item_check = checked_cast("item", pl.Int64(), _EXPECTED, what="item ID")
    run_checks(events, path, [item_check])
    events = events.with_columns(user, item).with_columns(
        # the position in the user's line; a user on several lines continues counting, in file order
        timestamp=order_within_user(),
        event=pl.lit(DEFAULT_EVENT),
        value=pl.lit(None, dtype=pl.Float64),
    )
    attributes = attributes_path(path)
    return RawLog(
        interactions=interactions_table(events, path),
        items=_read_attributes(attributes) if attributes else None,
        source=str(path),
        format="sequence",
        timestamp_kind="order",
    )


def _read_attributes(path: Path) -> pl.DataFrame:
    """``{"item_id": [attr_id, ...]}`` as an items table whose categories are the attribute IDs as strings."""
    try:
        attributes = json.loads(read_bytes(path))
    except UnicodeDecodeError:
        line, bad = first_invalid_utf8(path) or (0, b"")
        raise DataError(
            f"{path}:{line}: the bytes {bad!r} are not valid UTF-8; save the file as UTF-8."
        ) from None
    except json.JSONDecodeError as error:
        raise DataError(f"{path}:{error.lineno}:{error.colno}: not valid JSON: {error.msg}.") from None
    if not isinstance(attributes, dict):
        raise DataError(f'{path}: expected a JSON object {{"item_id": [attribute_id, ...], ...}}.')
    not_a_list = next((key for key, value in attributes.items() if not isinstance(value, list)), None)
    if not_a_list is not None:
        raise DataError(
            f'{path}: item {not_a_list!r}: every value must be a list of attribute IDs, e.g. "12": [3, 7].'
        )
    items = pl.DataFrame({"item": list(attributes)}, schema={"item": pl.String})
    try:
        categories = pl.Series("categories", list(attributes.values()), strict=False).cast(pl.List(pl.String))
    except (TypeError, pl.exceptions.PolarsError):
        raise DataError(f'{path}: every attribute ID must be a number or text, e.g. "12": [3, 7].') from None
    bad = items.filter(pl.col("item").cast(pl.Int64, strict=False).is_null())
    if bad.height:
        raise DataError(f"{path}: item key {bad['item'][0]!r} is not an integer item ID.")
    return items_table(items.with_columns(pl.col("item").cast(pl.Int64), categories))
