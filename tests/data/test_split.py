"""Tests for intentrec.data.split: the leakage guarantees, on random logs, against an obvious reference.

An interaction is identified by its position in its user's full sequence (``Dataset.interactions`` order),
so two equal (item, timestamp) events of one user stay distinct. For the leave-last protocols a user's
input history must be exactly the prefix of their full sequence that ends right before the first target;
for the temporal protocol every history event lies before the cut and every target at or after it.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from intentrec.data.dataset import Dataset
from intentrec.data.filters import FilterConfig
from intentrec.data.raw import RawLog
from intentrec.data.sequences import Sequences
from intentrec.data.split import EvalSet, Split, SplitConfig, split_dataset
from intentrec.errors import ConfigError, DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"

#: One user's events, oldest first, as ``(item_idx, timestamp)``; the list position is the identity.
Events = list[tuple[int, int]]

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def logs(draw: st.DrawFn) -> list[tuple[int, int, int]]:
    """Random ``(user, item, timestamp)`` rows: 1..8 users with 1..30 events each, read in a shuffled order.

    Few items and few distinct timestamps, so repeated items and equal timestamps are common.
    """
    n_users = draw(st.integers(1, 8))
    users = draw(st.lists(st.integers(0, 1000), min_size=n_users, max_size=n_users, unique=True))
    rows = []
    for user in users:
        length = draw(st.integers(1, 30))
        items = draw(st.lists(st.integers(0, 9), min_size=length, max_size=length))
        times = draw(st.lists(st.integers(0, 15), min_size=length, max_size=length))
        rows += [(user, item, time) for item, time in zip(items, times, strict=True)]
    return draw(st.permutations(rows))


def full_sequences(dataset: Dataset) -> dict[int, Events]:
    """Every user's whole sequence, in the dataset's order: the ground truth splits are checked against."""
    sequences: dict[int, Events] = {}
    for user, item, time in dataset.interactions.select("user_idx", "item_idx", "timestamp").iter_rows():
        sequences.setdefault(user, []).append((item, time))
    return sequences


def as_dict(sequences: Sequences) -> dict[int, Events]:
    """Rows of ``sequences`` by user; each user owns at most one row, rows ascend by user."""
    assert np.all(np.diff(sequences.users) > 0), "rows must hold distinct users in ascending order"
    return {
        int(user): list(
            zip(
                sequences.row(r).tolist(),
                sequences.timestamps[sequences.offsets[r] : sequences.offsets[r + 1]].tolist(),
                strict=True,
            )
        )
        for r, user in enumerate(sequences.users)
    }


def assert_pairs_users(eval_set: EvalSet) -> None:
    """History row ``r`` and target row ``r`` belong to the same user, and every target row is non-empty."""
    np.testing.assert_array_equal(eval_set.history.users, eval_set.targets.users)
    assert len(eval_set.history.offsets) == len(eval_set.targets.offsets) == len(eval_set) + 1
    assert np.all(eval_set.targets.lengths > 0)
    assert np.all(eval_set.history.lengths > 0)


def leave_last_split(dataset: Dataset, k: int) -> Split | None:
    """The leave-last split, or None after checking it refuses a log with no user to evaluate."""
    config = SplitConfig(kind="leave_one_out") if k == 1 else SplitConfig(kind="leave_last_k", k=k)
    if all(len(events) < 2 * k + 1 for events in full_sequences(dataset).values()):
        with pytest.raises(DataError, match="leaves no users to evaluate"):
            split_dataset(dataset, config)
        return None
    return split_dataset(dataset, config)


# --- leave_one_out and leave_last_k ----------------------------------------------------------------------

leave_last_cases = given(log=logs(), k=st.integers(1, 3))


@PROPERTY_SETTINGS
@leave_last_cases
def test_leave_last_history_is_the_prefix_right_before_the_first_target(make_dataset, log, k) -> None:
    ds = make_dataset(log, FilterConfig(duplicates="keep"))
    split = leave_last_split(ds, k)
    if split is None:
        return
    full = full_sequences(ds)
    valid_history, valid_targets = as_dict(split.valid.history), as_dict(split.valid.targets)
    test_history, test_targets = as_dict(split.test.history), as_dict(split.test.targets)
    for user in test_targets:
        n = len(full[user])
        # validation: targets are positions n-2k .. n-k-1, the history everything before them
        assert valid_history[user] == full[user][: n - 2 * k]
        assert valid_targets[user] == full[user][n - 2 * k : n - k]
        # test: targets are the last k positions, the history everything before them
        assert test_history[user] == full[user][: n - k]
        assert test_targets[user] == full[user][n - k :]


@PROPERTY_SETTINGS
@leave_last_cases
def test_leave_last_training_stops_before_the_first_validation_target(make_dataset, log, k) -> None:
    ds = make_dataset(log, FilterConfig(duplicates="keep"))
    split = leave_last_split(ds, k)
    if split is None:
        return
    full = full_sequences(ds)
    train = as_dict(split.train)
    evaluated = set(as_dict(split.valid.targets))
    assert set(train) == set(full), "every user keeps training events (evaluated users have >= 1)"
    for user, events in full.items():
        if user in evaluated:
            first_valid_target = len(events) - 2 * k
            assert train[user] == events[:first_valid_target]
        else:
            assert train[user] == events


@PROPERTY_SETTINGS
@leave_last_cases
def test_leave_last_validation_and_test_pair_the_same_users(make_dataset, log, k) -> None:
    ds = make_dataset(log, FilterConfig(duplicates="keep"))
    split = leave_last_split(ds, k)
    if split is None:
        return
    assert_pairs_users(split.valid)
    assert_pairs_users(split.test)
    np.testing.assert_array_equal(split.valid.history.users, split.test.history.users)


@PROPERTY_SETTINGS
@leave_last_cases
def test_leave_last_k_gives_k_targets_and_keeps_short_users_for_training(make_dataset, log, k) -> None:
    ds = make_dataset(log, FilterConfig(duplicates="keep"))
    split = leave_last_split(ds, k)
    if split is None:
        return
    long_enough = {user for user, events in full_sequences(ds).items() if len(events) >= 2 * k + 1}
    for eval_set in (split.valid, split.test):
        assert set(eval_set.targets.users.tolist()) == long_enough
        assert np.all(eval_set.targets.lengths == k)


@PROPERTY_SETTINGS
@leave_last_cases
def test_evaluation_histories_are_asked_for_at_their_first_targets_time(make_dataset, log, k) -> None:
    split = leave_last_split(make_dataset(log, FilterConfig(duplicates="keep")), k)
    if split is None:
        return
    for eval_set in (split.valid, split.test):
        first_targets = eval_set.targets.timestamps[eval_set.targets.offsets[:-1]]
        np.testing.assert_array_equal(eval_set.history.request_times, first_targets)


def test_leave_one_out_on_a_small_log(make_dataset) -> None:
    """Spelled out once: the last event is the test target, the one before it the validation target."""
    ds = make_dataset([(1, 10, 1), (1, 11, 2), (1, 12, 3), (1, 13, 4), (2, 10, 1), (2, 11, 2)])
    split = split_dataset(ds)
    assert as_dict(split.train) == {0: [(0, 1), (1, 2)], 1: [(0, 1), (1, 2)]}
    assert as_dict(split.valid.history) == {0: [(0, 1), (1, 2)]}
    assert as_dict(split.valid.targets) == {0: [(2, 3)]}
    assert as_dict(split.test.history) == {0: [(0, 1), (1, 2), (2, 3)]}
    assert as_dict(split.test.targets) == {0: [(3, 4)]}


# --- temporal --------------------------------------------------------------------------------------------


@st.composite
def temporal_cases(draw: st.DrawFn) -> tuple[list[tuple[int, int, int]], int, int, str]:
    """A random log, two timestamp cuts in order (possibly equal to event times), and the target mode."""
    log = draw(logs())
    # timestamps run 0..15: cuts inside that range leave users on both sides of each cut most of the time
    valid_cut = draw(st.integers(1, 14))
    test_cut = draw(st.integers(valid_cut + 1, 15))
    return log, valid_cut, test_cut, draw(st.sampled_from(["all", "first"]))


def expected_temporal(
    full: dict[int, Events], start: int, end: int | None, targets_mode: str
) -> tuple[dict[int, Events], dict[int, Events]]:
    """Reference eval set: users with history before ``start`` and a target in ``[start, end)``."""
    history, targets = {}, {}
    for user, events in full.items():
        before = [event for event in events if event[1] < start]
        window = [event for event in events if event[1] >= start and (end is None or event[1] < end)]
        if before and window:
            history[user] = before
            targets[user] = window[:1] if targets_mode == "first" else window
    return history, targets


@settings(max_examples=100, deadline=None)
@given(case=temporal_cases())
def test_temporal_split_respects_both_cuts(make_dataset, case) -> None:
    log, valid_cut, test_cut, targets_mode = case
    ds = make_dataset(log, FilterConfig(duplicates="keep"))
    config = SplitConfig(
        kind="temporal", valid_cut=valid_cut, test_cut=test_cut, temporal_targets=targets_mode
    )
    full = full_sequences(ds)
    expected_valid = expected_temporal(full, valid_cut, test_cut, targets_mode)
    expected_test = expected_temporal(full, test_cut, None, targets_mode)
    if not expected_valid[1] or not expected_test[1]:
        with pytest.raises(DataError, match="leaves no users to evaluate"):
            split_dataset(ds, config)
        return
    split = split_dataset(ds, config)

    # (a) no target in its own history: histories lie before the cut, targets at or after it
    for eval_set, start, end, expected in (
        (split.valid, valid_cut, test_cut, expected_valid),
        (split.test, test_cut, None, expected_test),
    ):
        assert np.all(eval_set.history.timestamps < start)
        assert np.all(eval_set.targets.timestamps >= start)
        if end is not None:
            assert np.all(eval_set.targets.timestamps < end)
        assert (as_dict(eval_set.history), as_dict(eval_set.targets)) == expected
        # asked for at the first target's time: at or after the cut, never a later target's
        first_targets = eval_set.targets.timestamps[eval_set.targets.offsets[:-1]]
        np.testing.assert_array_equal(eval_set.history.request_times, first_targets)
        # (c) history row r and target row r are the same user
        assert_pairs_users(eval_set)
        # (e) 'first' keeps exactly one target per user
        if targets_mode == "first":
            assert np.all(eval_set.targets.lengths == 1)

    # (b) training is each user's prefix before the validation cut, so it holds no evaluation target
    assert np.all(split.train.timestamps < valid_cut)
    expected_train = {u: [e for e in events if e[1] < valid_cut] for u, events in full.items()}
    assert as_dict(split.train) == {u: events for u, events in expected_train.items() if events}


def test_temporal_quantile_cut_puts_ties_on_the_target_side(make_dataset) -> None:
    # 100 events at times 0..99: the 0.9 quantile ('higher') is 90, and the event at 90 is a target
    log = [(i % 5, i % 7, i) for i in range(100)]
    split = split_dataset(make_dataset(log), SplitConfig(kind="temporal", valid_cut=0.9, test_cut=0.95))
    assert split.train.timestamps.max() == 89
    assert split.valid.targets.timestamps.min() == 90
    assert split.valid.targets.timestamps.max() < split.test.targets.timestamps.min() == 95


# --- errors ----------------------------------------------------------------------------------------------


def test_temporal_split_of_order_only_data_is_refused(make_dataset) -> None:
    ds = make_dataset([(1, 10, 0), (1, 11, 1), (1, 12, 2)], source="Beauty.txt", timestamp_kind="order")
    with pytest.raises(ConfigError, match=r"'temporal' needs real timestamps.*Beauty\.txt.*'leave_one_out'"):
        split_dataset(ds, SplitConfig(kind="temporal"))


def test_leave_one_out_with_only_short_users_is_refused(make_dataset) -> None:
    ds = make_dataset([(1, 10, 0), (1, 11, 1), (2, 12, 2)], source="short.csv")
    with pytest.raises(
        DataError, match=r"short\.csv: the leave_one_out split leaves no users to evaluate on \(validation"
    ):
        split_dataset(ds)


def test_temporal_cut_after_every_event_leaves_no_test_users(make_dataset) -> None:
    ds = make_dataset([(1, 10, 0), (1, 11, 5), (1, 12, 6)], source="late.csv")
    with pytest.raises(
        DataError,
        match=r"late\.csv: the temporal split .*\(test set is empty\).*cuts are at 5 and 100.*0 to 6",
    ):
        split_dataset(ds, SplitConfig(kind="temporal", valid_cut=5, test_cut=100))


def test_split_config_rejects_cuts_out_of_order(make_dataset) -> None:
    with pytest.raises(ValidationError, match=r"valid_cut \(0.95\) must not be after test_cut \(0.9\)"):
        SplitConfig(kind="temporal", valid_cut=0.95, test_cut=0.9)
    # a time and a quantile: compared once the quantile is a time
    ds = make_dataset([(1, 10 + t, t) for t in range(20)], source="mixed.csv")
    assert len(split_dataset(ds, SplitConfig(kind="temporal", valid_cut=5, test_cut=0.9)).test) == 1
    with pytest.raises(ConfigError, match=r"split\.valid_cut \(0\.5: 10\) is after split\.test_cut \(3: 3\)"):
        split_dataset(ds, SplitConfig(kind="temporal", valid_cut=0.5, test_cut=3))


# --- real data -------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")
def test_leave_one_out_on_beauty() -> None:
    """S3-Rec's Amazon Beauty: one line per user, ``user item1 item2 ...``, oldest first."""
    path = SHARED / "s3rec-seq" / "Beauty.txt.gz"
    lines = pl.DataFrame({"text": gzip.decompress(path.read_bytes()).decode().splitlines()})
    lines = lines.with_row_index("line", offset=1).with_columns(
        tokens=pl.col("text").str.split(" ").cast(pl.List(pl.Int64))
    )
    events = (
        lines.select(
            "line",
            user=pl.col("tokens").list.first(),
            item=pl.col("tokens").list.slice(1),
            timestamp=pl.int_ranges(pl.col("tokens").list.len() - 1, dtype=pl.Int64),
        )
        .explode("item", "timestamp")
        .select(
            "user",
            "item",
            "timestamp",
            event=pl.lit("interaction"),
            value=pl.lit(None, dtype=pl.Float64),
            file=pl.lit(str(path)),
            line=pl.col("line").cast(pl.Int64),
        )
    )
    ds = Dataset.from_raw(RawLog(events.lazy(), None, str(path), "sequence", timestamp_kind="order"))
    split = split_dataset(ds)

    assert ds.n_items == 12_101
    assert len(split.valid) == len(split.test) == 22_363
    last_items = dict(zip(lines["tokens"].list.first(), lines["tokens"].list.last(), strict=True))
    test_users = ds.user_ids(split.test.targets.users).to_list()
    test_items = ds.item_ids(split.test.targets.items).to_list()
    assert all(last_items[user] == item for user, item in zip(test_users, test_items, strict=True))
