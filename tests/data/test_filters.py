"""Tests for intentrec.data.filters: each filter, their order, the iterative k-core, and every error."""

from __future__ import annotations

from collections import Counter

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from intentrec.data.filters import FilterConfig, apply_filters, k_core
from intentrec.errors import DataError


def interactions(rows: list[tuple]) -> pl.DataFrame:
    """A raw interactions table from ``(user, item)`` or ``(user, item, timestamp, event, value)`` rows."""
    rows = [(*row, 0, "click", None)[:5] if len(row) == 2 else row for row in rows]
    return pl.DataFrame(
        rows,
        schema={
            "user": pl.Int64,
            "item": pl.Int64,
            "timestamp": pl.Int64,
            "event": pl.String,
            "value": pl.Float64,
        },
        orient="row",
    ).with_columns(file=pl.lit("log.csv"), line=pl.int_range(2, pl.len() + 2))


# --- event, rating and duplicate filters -----------------------------------------------------------------


def test_events_keeps_only_the_selected_types() -> None:
    log = interactions([(1, 10, 1, "pv", None), (1, 11, 2, "buy", None), (2, 10, 3, "cart", None)])
    kept = apply_filters(log, FilterConfig(events=["buy", "cart"]), "log.csv")
    assert kept["event"].to_list() == ["buy", "cart"]


def test_unknown_event_names_the_filter_and_the_events_present() -> None:
    log = interactions([(1, 10, 1, "pv", None), (1, 11, 2, "buy", None)])
    with pytest.raises(
        DataError,
        match=r"^log\.csv: event type\(s\) \['click'\] selected by 'events' are not in the log; "
        r"it has \['buy', 'pv'\]\.$",
    ):
        apply_filters(log, FilterConfig(events=["buy", "click"]), "log.csv")


def test_min_rating_keeps_values_at_or_above_it_and_drops_missing_values() -> None:
    log = interactions([(1, 10, 1, "rating", 3.5), (1, 11, 2, "rating", 3.0), (1, 12, 3, "tag", None)])
    kept = apply_filters(log, FilterConfig(min_rating=3.5), "log.csv")
    assert kept["item"].to_list() == [10]


def test_min_rating_without_values_names_the_setting() -> None:
    log = interactions([(1, 10), (2, 11)])
    with pytest.raises(
        DataError, match=r"^log\.csv: 'min_rating' is set to 4\.0 but the log has no rating values\.$"
    ):
        apply_filters(log, FilterConfig(min_rating=4), "log.csv")


def test_min_rating_that_keeps_nothing_names_the_threshold() -> None:
    log = interactions([(1, 10, 1, "rating", 3.0)])
    with pytest.raises(
        DataError, match=r"^log\.csv: no interactions left after keeping ratings >= 6\.0; loosen that filter"
    ):
        apply_filters(log, FilterConfig(min_rating=6), "log.csv")


def test_duplicates_are_dropped_before_the_k_core(caplog) -> None:
    # user 1 has two rows, but they are one interaction read twice: the 2-core drops user 1
    read_twice = [(1, 10, 5, "click", None)] * 2
    log = interactions([*read_twice, (2, 10, 1, "click", None), (2, 10, 2, "click", None)])
    with caplog.at_level("INFO"):
        kept = apply_filters(log, FilterConfig(min_user_interactions=2), "log.csv")
    assert kept["user"].to_list() == [2, 2]
    assert "log.csv: dropped 1 exact repeat(s) of an event" in caplog.text


def test_filters_keep_the_reading_order_of_the_rows_they_keep() -> None:
    log = interactions([(3, 10), (1, 11), (3, 11), (2, 10), (1, 10)])
    kept = apply_filters(log, FilterConfig(min_user_interactions=2), "log.csv")
    assert kept.select("user", "item").rows() == [(3, 10), (1, 11), (3, 11), (1, 10)]


def test_filter_config_rejects_unknown_keys_and_negative_minimums() -> None:
    with pytest.raises(ValidationError, match="min_user_interaction"):
        FilterConfig(min_user_interaction=5)
    with pytest.raises(ValidationError, match="min_item_interactions"):
        FilterConfig(min_item_interactions=-1)


# --- k-core ----------------------------------------------------------------------------------------------


def reference_k_core(pairs: list[tuple[int, int]], min_user: int, min_item: int) -> list[tuple[int, int]]:
    """Remove one under-supported user or item at a time until none is left (users first, for contrast).

    The k-core is the largest sub-log in which every user and item has enough interactions; it does not
    depend on the order of removals, so this slow version must agree with the vectorised one.
    """
    pairs = list(pairs)
    while True:
        users, items = Counter(u for u, _ in pairs), Counter(i for _, i in pairs)
        weak_users = {u for u, n in users.items() if n < min_user}
        if weak_users:
            pairs = [(u, i) for u, i in pairs if u not in weak_users]
            continue
        weak_items = {i for i, n in items.items() if n < min_item}
        if not weak_items:
            return pairs
        pairs = [(u, i) for u, i in pairs if i not in weak_items]


# A chain: the 2/2 core is empty, and each pass peels off one more user and item.
#   item 13 has one interaction -> drop it -> user 3 has one left -> drop it -> item 12 has one left -> ...
CHAIN = [(1, 10), (1, 11), (2, 11), (2, 12), (3, 12), (3, 13), (4, 20), (4, 21), (5, 20), (5, 21)]


def test_k_core_needs_more_than_one_pass() -> None:
    log = interactions(CHAIN)
    one_pass = log.filter(pl.len().over("item") >= 2).filter(pl.len().over("user") >= 2)
    core = k_core(log, min_user=2, min_item=2)
    assert one_pass.height > core.height, "the case must need a second pass"
    assert core.select("user", "item").rows() == [(4, 20), (4, 21), (5, 20), (5, 21)]
    assert core.select("user", "item").rows() == reference_k_core(CHAIN, 2, 2)


@settings(max_examples=100, deadline=None)
@given(
    pairs=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), min_size=1, max_size=60),
    min_user=st.integers(0, 4),
    min_item=st.integers(0, 4),
)
def test_k_core_matches_the_reference(pairs, min_user, min_item) -> None:
    core = k_core(interactions(pairs), min_user, min_item)
    assert core.select("user", "item").rows() == reference_k_core(pairs, min_user, min_item)


def test_empty_k_core_names_the_filter(make_dataset) -> None:
    with pytest.raises(
        DataError,
        match=r"^chain\.csv: no interactions left after the 2/2 \(user/item\) k-core filter; loosen",
    ):
        make_dataset(
            [(u, i, t) for t, (u, i) in enumerate(CHAIN[:6])],
            FilterConfig(min_user_interactions=2, min_item_interactions=2),
            source="chain.csv",
        )
