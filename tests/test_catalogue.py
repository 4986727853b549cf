"""Tests for intentrec.catalogue: raw-ID lookups in the vocabulary's type, category filters, raw histories."""

from __future__ import annotations

import time

import numpy as np
import polars as pl
import pytest

from intentrec.catalogue import Catalogue, UnknownIdError
from intentrec.data.filters import FilterConfig
from intentrec.data.sequences import Sequences
from intentrec.errors import IntentRecError

ITEMS = pl.DataFrame(
    {
        "item": [10, 20, 30],
        "title": ["Ten", "Twenty", None],
        "categories": [["Comedy", "Drama"], ["Drama"], []],
    }
)


@pytest.fixture(scope="module")
def catalogue(make_dataset) -> Catalogue:
    """Integer IDs: users 1 and 2; items 10 (Comedy, Drama), 20 (Drama), 30 (no metadata), 40 (no row)."""
    rows = [(1, 10, 5, "click"), (1, 20, 6, "buy"), (2, 30, 7, "click"), (2, 40, 8, "click")]
    return Catalogue(make_dataset(rows, items=ITEMS))


# --- lookups -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "index"), [(10, 0), ("20", 1), (" 20", None), (40, 3), (99, None), (True, None)]
)
def test_integer_item_ids_are_matched_from_ints_and_integer_strings(catalogue, raw, index) -> None:
    assert catalogue.item_index(raw) == index


def test_string_ids_are_matched_from_ints_too(make_dataset) -> None:
    catalogue = Catalogue(make_dataset([("u1", "7", 1), ("u1", "x", 2)]))
    assert catalogue.item_index(7) == 0 and catalogue.item_index("x") == 1
    assert catalogue.item_index(8) is None


def test_require_users_keeps_the_order_and_names_every_unknown_id(catalogue) -> None:
    assert catalogue.require_users([2, "1"]).tolist() == [1, 0]
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\) \[3, 'x'\].*\(2 users\)"):
        catalogue.require_users([1, 3, "x"])


def test_require_item_names_the_unknown_id(catalogue) -> None:
    assert catalogue.require_item("30") == 2
    with pytest.raises(UnknownIdError, match=r"unknown item id 'nope'.*\(4 items\)"):
        catalogue.require_item("nope")


# --- category filters --------------------------------------------------------------------------------------


def test_no_filter_allows_everything(catalogue) -> None:
    assert catalogue.allowed() is None
    assert catalogue.allowed([], []) is None


def test_include_keeps_items_with_any_listed_category_and_exclude_removes_them(catalogue) -> None:
    assert catalogue.allowed(include=["Drama"]).tolist() == [True, True, False, False]
    # one category alone, or a set (order means nothing to a filter)
    assert catalogue.allowed(include="Drama").tolist() == catalogue.allowed(include={"Drama"}).tolist()
    assert catalogue.allowed(include="Drama").tolist() == [True, True, False, False]
    assert catalogue.allowed(include=["Comedy", "Drama"], exclude=["Comedy"]).tolist() == [
        False,
        True,
        False,
        False,
    ]
    # items without categories are never included, and never excluded
    assert catalogue.allowed(exclude=["Drama"]).tolist() == [False, False, True, True]


def test_filters_that_leave_no_item_are_an_error(catalogue) -> None:
    with pytest.raises(IntentRecError, match=r"including Drama and excluding Drama, Comedy leaves no item"):
        catalogue.allowed(include=["Drama"], exclude=["Drama", "Comedy"])


def test_an_unknown_category_is_an_error_with_a_suggestion(catalogue, make_dataset) -> None:
    with pytest.raises(IntentRecError, match=r"unknown category 'comdy' \(did you mean 'Comedy'\?\).*Drama"):
        catalogue.allowed(include=["comdy"])
    bare = Catalogue(make_dataset([(1, 10, 5)]))
    with pytest.raises(IntentRecError, match="the catalogue has no categories"):
        bare.allowed(exclude=["Drama"])


# --- raw histories -----------------------------------------------------------------------------------------


def test_a_history_is_taken_in_the_order_given_without_timestamps(catalogue) -> None:
    encoded = catalogue.encode_history([30, 10, 20])
    assert encoded.history.items.tolist() == [2, 0, 1]
    assert encoded.history.timestamps.tolist() == [0, 1, 2]
    assert encoded.unknown == [] and encoded.skipped_events == 0


def test_timestamps_order_a_history_and_ties_keep_the_order_given(catalogue) -> None:
    encoded = catalogue.encode_history([10, 20, 30, 40], timestamps=[9, 5, 9, 1])
    assert encoded.history.items.tolist() == [3, 1, 0, 2]
    assert encoded.history.timestamps.tolist() == [1, 5, 9, 9]


def test_a_history_asks_for_its_next_items_at_the_request_time_in_the_models_seconds(make_dataset) -> None:
    catalogue = Catalogue(make_dataset([(1, 10, 1_600_000_000_000), (1, 20, 1_600_000_060_000)]))  # ms
    stamps = [1_600_000_000_000, 1_600_000_060_000]
    encoded = catalogue.encode_history([10, 20], timestamps=stamps, at=1_700_000_000_123)
    assert encoded.history.timestamps.tolist() == [1_600_000_000, 1_600_000_060]
    assert encoded.history.request_times.tolist() == [1_700_000_000]
    assert catalogue.request_time(catalogue.now()) == pytest.approx(time.time(), abs=2)
    # numbered by position: asked at the number after the last one given, whatever was left out
    assert catalogue.encode_history([10, 99, 20]).history.request_times.tolist() == [3]
    with pytest.raises(IntentRecError, match="no timestamps"):
        catalogue.encode_history([10, 20], at=1_700_000_000_000)
    with pytest.raises(IntentRecError, match=r"at=9223372036854775808: .* fits in 64 bits"):
        catalogue.request_time(2**63)
    assert catalogue.request_time(-1_000) == -1  # before 1970, as a log's own times may be
    # a time in microseconds sent to a log counting milliseconds
    with pytest.raises(IntentRecError, match=r"after the year 5000 in the log's unit \(milliseconds\)"):
        catalogue.request_time(1_700_000_000_000_000)
    with pytest.raises(IntentRecError, match=r"before the last event .*one at 1600000060000"):
        catalogue.encode_history([10, 20], timestamps=stamps, at=1_600_000_030_000)
    at_the_last_event = catalogue.encode_history([10, 20], timestamps=stamps, at=stamps[1])
    assert at_the_last_event.history.request_times.tolist() == [1_600_000_060]
    # asked now by default, but never before the history's last event (a client's clock ahead of ours)
    ahead = catalogue.now() + 3_600_000
    asked_now = catalogue.encode_history([10, 20], timestamps=[stamps[0], ahead])
    assert asked_now.history.request_times.tolist() == [ahead // 1000]


def test_asking_now_about_a_log_that_ended_long_ago_is_warned_about_once(make_dataset, caplog) -> None:
    year = 365 * 86400
    old = make_dataset([(1, 10, 1_000_000_000_000), (1, 20, 1_000_000_000_000 + year * 1000)])  # ms, 2001-02
    recent = make_dataset([(1, 10, int(time.time()) - 3 * year), (1, 20, int(time.time()) - year)])
    caplog.clear()
    Catalogue(old).request_time()  # a model that does not read the time of the request: nothing to say
    Catalogue(old, reads_request_time=True).request_time(1_100_000_000_000)  # `at` given
    assert not caplog.records
    catalogue = Catalogue(old, reads_request_time=True)
    catalogue.request_time()
    catalogue.request_time()
    assert len(caplog.records) == 1
    assert "the log ended on 2002-09-09" in caplog.text and "1031536000000 in its unit" in caplog.text
    caplog.clear()
    Catalogue(recent, reads_request_time=True).request_time()  # ended a year ago after lasting two
    assert not caplog.records


def test_known_users_are_asked_at_one_time_not_before_any_of_their_last_events(catalogue) -> None:
    frame = pl.DataFrame({"user_idx": [0, 0, 1], "item_idx": [0, 1, 2], "timestamp": [5, 6, 8]})
    history = Sequences.from_frame(frame)
    assert catalogue.ask(history, at=8).request_times.tolist() == [8, 8]
    with pytest.raises(IntentRecError, match="1 of the histories"):
        catalogue.ask(history, at=7)


def test_unknown_items_are_left_out_and_listed_or_rejected(catalogue) -> None:
    encoded = catalogue.encode_history([10, "x", 99, 20], timestamps=[1, 2, 3, 4])
    assert encoded.history.items.tolist() == [0, 1]
    assert encoded.history.timestamps.tolist() == [1, 4]
    assert encoded.unknown == ["x", 99]
    with pytest.raises(
        IntentRecError, match=r"2 item\(s\) of the history are not in the catalogue: \['x', 99\]"
    ):
        catalogue.encode_history([10, "x", 99], unknown_items="reject")


def test_a_history_with_no_known_item_is_an_error(catalogue) -> None:
    with pytest.raises(
        IntentRecError,
        match=r"left to recommend from: 1 item\(s\) not in the catalogue: \['x'\]\.",
    ):
        catalogue.encode_history(["x"])
    with pytest.raises(IntentRecError, match="the history is empty"):
        catalogue.encode_history([])


def test_events_of_types_the_run_did_not_train_on_are_skipped(make_dataset) -> None:
    rows = [(1, 10, 5, "click"), (1, 20, 6, "buy"), (2, 10, 7, "click")]
    catalogue = Catalogue(make_dataset(rows, filters=FilterConfig(events=["click"])))
    encoded = catalogue.encode_history([10, 10, 10], events=["click", "buy", None])
    assert encoded.history.items.tolist() == [0, 0] and encoded.skipped_events == 1
    with pytest.raises(
        IntentRecError,
        match=r"from: 1 event\(s\) of types the model was not trained on \(it knows 'click'\)\.",
    ):
        catalogue.encode_history([10], events=["buy"])
    unfiltered = Catalogue(make_dataset(rows))  # a type the log never had is not one it trained on either
    encoded = unfiltered.encode_history([10, 20, 10], events=["buy", "nope", "click"])
    assert encoded.history.items.tolist() == [0, 0] and encoded.skipped_events == 1


@pytest.mark.parametrize("field", ["timestamps", "events"])
def test_per_event_lists_must_match_the_items(catalogue, field) -> None:
    with pytest.raises(IntentRecError, match=f"the history has 2 items but 1 {field[:-1]}"):
        catalogue.encode_history([10, 20], **{field: [1] if field == "timestamps" else ["click"]})


@pytest.mark.parametrize(
    "timestamps", [[1, 2**63], [1, "noon"], [1, 2.5], np.array([1.0, np.nan]), ["1", "2"]]
)
def test_timestamps_must_be_64_bit_integers(catalogue, timestamps) -> None:
    with pytest.raises(IntentRecError, match="give whole numbers that fit in 64 bits"):
        catalogue.encode_history([10, 20], timestamps=timestamps)


def test_whole_floats_are_timestamps_but_not_times_past_the_year_5000(catalogue) -> None:
    as_floats = catalogue.encode_history([10, 20], timestamps=np.array([1.0, 2.0]))
    assert as_floats.history.timestamps.tolist() == [1, 2]
    with pytest.raises(IntentRecError, match=r"after the year 5000 in the log's unit \(seconds\)"):
        catalogue.encode_history([10, 20], timestamps=[1, 10**18])
