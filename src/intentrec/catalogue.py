"""A Dataset's users and items as in-memory lookups, for answering one request at a time.

The Dataset maps raw IDs with joins, which suits whole tables; a recommendation request needs a handful
of lookups in microseconds. Raw IDs arrive from JSON, a file or Python as ``int`` or ``str`` and are
matched in the type of the dataset's vocabulary: ``"42"`` finds item 42 of an integer-keyed log and ``42``
finds item ``"42"`` of a string-keyed one.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, get_args

import numpy as np

from intentrec.data.dataset import LATEST_SECONDS, TIME_UNITS, Dataset
from intentrec.data.sequences import Sequences
from intentrec.errors import IntentRecError, did_you_mean

log = logging.getLogger("intentrec")

_INTEGER = re.compile(r"-?[0-9]+")

#: What to do with history items the catalogue does not have: leave them out, or refuse the history.
UnknownItems = Literal["ignore", "reject"]


class UnknownIdError(IntentRecError):
    """A user or item ID that is not in the dataset the model was trained on."""


@dataclass(frozen=True)
class EncodedHistory:
    """A raw history in dataset indices: ``history`` holds one row, oldest event first.

    ``unknown`` are the raw item IDs that are not in the catalogue, in the order given (they are left
    out); ``skipped_events`` counts events of a type the run did not train on (``data.filters.events``).
    """

    history: Sequences
    unknown: list[Any]
    skipped_events: int


class Catalogue:
    """Raw IDs, titles and categories of a Dataset's items, and its users, as Python lookups."""

    def __init__(self, dataset: Dataset, reads_request_time: bool = False) -> None:
        """``reads_request_time``: the model reads when its items are asked for (``query_time =
        "request"``), so asking now about a log that ended long ago is warned about, once."""
        items = dataset.items
        self.n_items = items.height
        self.item_ids: list[Any] = items["item"].to_list()
        self.titles: list[str | None] = items["title"].to_list()
        self.categories: list[list[str]] = items["categories"].to_list()
        self._item_index = {raw: index for index, raw in enumerate(self.item_ids)}
        self._integer_items = items["item"].dtype.is_integer()
        users = dataset.users
        self.user_ids: list[Any] = users["user"].to_list()
        self.n_users = len(self.user_ids)
        self._user_index = dict(zip(self.user_ids, users["user_idx"].to_list(), strict=True))
        self._integer_users = users["user"].dtype.is_integer()
        members = dataset.item_categories()
        self._category_items: dict[str, np.ndarray] = {
            name: np.asarray(indices, dtype=np.int64)
            for name, indices in members.group_by("categories").agg("item_idx").iter_rows()
        }
        self._trained_events = set(dataset.card.events)  # what the log held after its filters
        self._time_divisor = dataset.card.time_divisor
        timed = dataset.card.timestamp_kind == "unix_seconds"
        self._unwarned_time_range: tuple[int, int] | None = (
            dataset.card.time_range if timed and reads_request_time else None
        )

    # --- lookups -------------------------------------------------------------------------------------------

    def item_index(self, raw: Any) -> int | None:
        """Dataset index of a raw item ID, or None when the catalogue does not have it."""
        return self._item_index.get(_as_vocabulary_type(raw, self._integer_items))

    def user_index(self, raw: Any) -> int | None:
        """Dataset index of a raw user ID, or None when the dataset does not have it."""
        return self._user_index.get(_as_vocabulary_type(raw, self._integer_users))

    def require_item(self, raw: Any) -> int:
        index = self.item_index(raw)
        if index is None:
            raise UnknownIdError(f"unknown item id {raw!r}: not in the catalogue ({self.n_items} items).")
        return index

    def require_users(self, raws: Sequence[Any]) -> np.ndarray:
        """Dataset indices of raw user IDs, in the order given; every unknown ID is named in the error."""
        indices = [self.user_index(raw) for raw in raws]
        unknown = [raw for raw, index in zip(raws, indices, strict=True) if index is None]
        if unknown:
            raise UnknownIdError(
                f"unknown user id(s) {_some(unknown)}: "
                f"not in the dataset this model was trained on ({self.n_users} users)."
            )
        return np.asarray(indices, dtype=np.int64)

    # --- filters -------------------------------------------------------------------------------------------

    def allowed(
        self, include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
    ) -> np.ndarray | None:
        """``(n_items,)`` bool: items with at least one ``include`` category and no ``exclude`` one.

        None when neither is given (every item is allowed). Items without categories never match
        ``include``. A category the catalogue does not have is an error, so a typo does not silently
        empty (or fail to filter) a list, as are filters that allow no item.
        """
        include, exclude = as_list(include, ordered=False), as_list(exclude, ordered=False)
        if not include and not exclude:
            return None
        allowed = np.ones(self.n_items, dtype=bool)
        if include:
            allowed[:] = False
            for name in include:
                allowed[self._items_of(name)] = True
        for name in exclude or ():
            allowed[self._items_of(name)] = False
        if not allowed.any():  # else every list would come back empty, with no word of why
            excluded = ", ".join(exclude or ())
            raise IntentRecError(
                f"including {', '.join(include)} and excluding {excluded} leaves no item: every item of the "
                "first has one of the second."
                if include
                else f"excluding {excluded} leaves no item: every item has one of them."
            )
        return allowed

    def _items_of(self, category: str) -> np.ndarray:
        if not isinstance(category, str):
            raise IntentRecError(f"category {category!r}: expected a category's name (text).")
        items = self._category_items.get(category)
        if items is None:
            known = sorted(self._category_items)
            listed = ", ".join(known[:20]) + (" ..." if len(known) > 20 else "")
            raise IntentRecError(
                f"unknown category {category!r}{did_you_mean(category, known)}; "
                + (f"the catalogue has: {listed}." if known else "the catalogue has no categories.")
            )
        return items

    # --- raw histories -------------------------------------------------------------------------------------

    def request_time(self, at: int | None = None) -> int:
        """When a request asks for its items, in the unit the model was trained in (seconds for real
        timestamps): ``at`` in the log's own unit, by default now."""
        if at is not None and (isinstance(at, bool) or not isinstance(at, int | np.integer)):
            raise IntentRecError(
                f"at={at!r}: give a time in the log's unit, a whole number (e.g. int(time.time()))."
            )
        if at is not None and not -(2**63) <= at < 2**63:  # as a log's times: before 1970 too
            raise IntentRecError(
                f"at={at}: give a time in the log's unit, a whole number that fits in 64 bits."
            )
        if at is not None and at // self._time_divisor >= LATEST_SECONDS:  # as Dataset checks a log's times
            unit = TIME_UNITS[self._time_divisor]
            raise IntentRecError(
                f"at={at} is after the year 5000 in the log's unit ({unit}); give it in that unit."
            )
        return int(self.asked_now() if at is None else at) // self._time_divisor

    def now(self) -> int:
        """The current time in the log's own unit (what ``at`` takes)."""
        return int(time.time()) * self._time_divisor

    def asked_now(self) -> int:
        """:meth:`now`, for a request that gives no time: said, once, when the log ended long before."""
        now = self.now()
        if self._unwarned_time_range is not None:
            first, last = self._unwarned_time_range
            self._unwarned_time_range = None  # warned about once
            _warn_if_old(now // self._time_divisor, first, last, self._time_divisor)
        return now

    def ask(self, history: Sequences, at: int | None = None) -> Sequences:
        """``history`` (non-empty rows) with every row asking for its next items at ``at`` (the log's unit;
        default now, or a row's last event when that is later: a client's clock ahead of the server's). An
        ``at`` before a row's last event is an error: the history would hold events from after the request."""
        asked_at = self.request_time(at)
        if not len(history):
            return history.at(asked_at)
        last = history.timestamps[history.offsets[1:] - 1]
        if at is None:
            return replace(history, request_times=np.maximum(last, asked_at))
        late = np.flatnonzero(last > asked_at)
        if len(late):
            raise IntentRecError(
                f"at={at} is before the last event of {len(late)} of the histories asked for (one at "
                f"{int(last[late[0]]) * self._time_divisor}, in the log's unit); ask at or after it."
            )
        return history.at(asked_at)

    def encode_history(
        self,
        items: Sequence[Any],
        timestamps: Sequence[int] | None = None,
        events: Sequence[str | None] | None = None,
        unknown_items: UnknownItems = "ignore",
        at: int | None = None,
    ) -> EncodedHistory:
        """Encode a history given in raw item IDs (oldest first, or in any order with timestamps).

        With timestamps the events are ordered by time, ties kept in the order given (the Dataset's own
        ordering policy), and the history asks for its next items at ``at`` (see :meth:`ask`); without them
        they are taken in the order given and numbered 0, 1, 2, ..., and ask at the number after the last
        one given (``at`` is then an error: it cannot be placed among the numbers).
        Events of a type the run did not train on are skipped; ``None`` is a type it trained on.
        Unknown items are left out and listed, or an error with ``unknown_items="reject"``; a history
        with no known item left is an error either way, since there is nothing to recommend from.
        """
        items, timestamps, events = as_list(items), as_list(timestamps), as_list(events)
        if not items:
            raise IntentRecError("the history is empty; give at least one event.")
        if unknown_items not in get_args(UnknownItems):
            raise IntentRecError(f"unknown_items={unknown_items!r}: expected 'ignore' or 'reject'.")
        if timestamps is not None and len(timestamps) != len(items):
            raise IntentRecError(
                f"the history has {len(items)} items but {len(timestamps)} timestamps; give one per item."
            )
        if at is not None and timestamps is None:
            raise IntentRecError(
                f"at={at} gives the time of the request, but the history has no timestamps to measure it "
                "from; give each event's timestamp too, or leave 'at' out."
            )
        if events is not None and len(events) != len(items):
            raise IntentRecError(
                f"the history has {len(items)} items but {len(events)} event types; give one per item."
            )
        try:
            given = np.asarray(timestamps if timestamps is not None else range(len(items)))
            with np.errstate(invalid="ignore"):  # NaN: refused below, not warned about
                times = given.astype(np.int64)
            if given.dtype.kind not in "iu" and not np.array_equal(times, given):  # 1.5, NaN, "12"
                raise ValueError
        except (OverflowError, TypeError, ValueError):
            raise IntentRecError(
                f"timestamps {_some(list(timestamps or []))}: give whole numbers that fit in 64 bits."
            ) from None
        if timestamps is not None and (times // self._time_divisor >= LATEST_SECONDS).any():
            raise IntentRecError(
                f"timestamps {_some(list(timestamps))}: after the year 5000 in the log's unit "
                f"({TIME_UNITS[self._time_divisor]}); give them in that unit."
            )
        keep, indices, unknown, skipped = [], [], [], 0
        for position, raw in enumerate(items):
            event = events[position] if events is not None else None
            if event is not None and event not in self._trained_events:
                skipped += 1
                continue
            index = self.item_index(raw)
            if index is None:
                unknown.append(raw)
                continue
            keep.append(position)
            indices.append(index)
        if unknown and unknown_items == "reject":
            raise IntentRecError(
                f"{len(unknown)} item(s) of the history are not in the catalogue: {_some(unknown)}; "
                "leave them out or send unknown_items='ignore' to skip them."
            )
        if not keep:
            reasons = [f"{len(unknown)} item(s) not in the catalogue: {_some(unknown)}"] if unknown else []
            if skipped:
                trained = ", ".join(map(repr, sorted(self._trained_events)))
                reasons.append(
                    f"{skipped} event(s) of types the model was not trained on (it knows {trained})"
                )
            raise IntentRecError(f"no event of the history is left to recommend from: {'; '.join(reasons)}.")
        order = np.argsort(times[keep], kind="stable")
        history = Sequences(
            users=np.zeros(1, dtype=np.int32),
            offsets=np.array([0, len(keep)], dtype=np.int64),
            items=np.asarray(indices, dtype=np.int32)[order],
            # ordered in the log's unit, then in seconds as the model was trained (DatasetCard.time_divisor)
            timestamps=times[keep][order] // (self._time_divisor if timestamps is not None else 1),
        )
        history = self.ask(history, at) if timestamps is not None else history.at(len(items))
        return EncodedHistory(history=history, unknown=unknown, skipped_events=skipped)


def as_list(values: Any, ordered: bool = True) -> list[Any] | None:
    """A list of IDs or names from what a caller may pass: a list, tuple, array or Series, one ID or name
    alone, or None; a set only where order means nothing (not ``ordered``)."""
    if values is None or isinstance(values, list):
        return values
    if isinstance(values, str | int | np.integer):  # one, not its characters or digits
        return [values]
    if isinstance(values, bytes | bytearray | memoryview | dict) or (
        ordered and isinstance(values, set | frozenset)
    ):
        raise IntentRecError(f"{type(values).__name__} {values!r:.60}: give a list of IDs or names, in order")
    try:
        return list(values)
    except TypeError:
        raise IntentRecError(f"{values!r}: expected a list of IDs or names.") from None


def _some(values: list[Any], shown: int = 5) -> str:
    return f"{values[:shown]}{' ...' if len(values) > shown else ''}"


def _as_vocabulary_type(raw: Any, integer: bool) -> Any:
    """``raw`` as the vocabulary stores IDs: an int for integer vocabularies, else a str."""
    if integer:
        if isinstance(raw, bool):  # True == 1 in Python; an ID is never a boolean
            return None
        if isinstance(raw, int):
            return raw
        text = str(raw)
        return int(text) if _INTEGER.fullmatch(text) else None
    return raw if isinstance(raw, str) else str(raw)


def _warn_if_old(now: int, first: int, last: int, divisor: int) -> None:
    """Warn when a log (times in seconds) ended longer ago than it lasts: the gaps from its users' last
    events to ``now`` are then longer than any a model met in training, where its time bias never learned."""
    if now - last > max(last - first, 1):
        log.warning(
            "the log ended on %s, %.1f years ago, and this model reads when its items are asked for: asked "
            "now, its users' gaps are longer than any it trained on; give `at` (--at), e.g. the log's last "
            "time, %d in its unit, to ask as of the log's end",
            time.strftime("%Y-%m-%d", time.gmtime(last)),
            (now - last) / (365.25 * 86400),
            last * divisor,
        )
