"""Tests for intentrec.data.sequences: the vectorised CSR gathers against slow, obvious list versions."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import polars as pl
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.data.sequences import PAD, PaddedBatch, Sequences, TrainingBatch, pad_left, training_batch

#: Ragged data as plain lists: ``users[r]`` owns ``items[r]`` and ``times[r]`` (equal lengths, >= 1).
Ragged = tuple[list[int], list[list[int]], list[list[int]]]


@st.composite
def ragged(draw: st.DrawFn) -> Ragged:
    n_rows = draw(st.integers(1, 10))
    users = sorted(draw(st.lists(st.integers(0, 50), min_size=n_rows, max_size=n_rows, unique=True)))
    lengths = draw(st.lists(st.integers(1, 12), min_size=n_rows, max_size=n_rows))
    items = [draw(st.lists(st.integers(0, 20), min_size=n, max_size=n)) for n in lengths]
    times = [sorted(draw(st.lists(st.integers(0, 10**9), min_size=n, max_size=n))) for n in lengths]
    return users, items, times


def row_selections(n_rows: int) -> st.SearchStrategy[np.ndarray]:
    """Rows to gather: any order, repeats allowed, possibly none."""
    return st.lists(st.integers(0, n_rows - 1), max_size=12).map(lambda rows: np.array(rows, dtype=np.int64))


def to_sequences(data: Ragged) -> Sequences:
    users, items, times = data
    frame = pl.DataFrame(
        {
            "user_idx": [user for user, row in zip(users, items, strict=True) for _ in row],
            "item_idx": [item for row in items for item in row],
            "timestamp": [time for row in times for time in row],
        }
    )
    return Sequences.from_frame(frame)


# --- reference implementations ---------------------------------------------------------------------------


def right_aligned(rows: list[list[int]], width: int, fill: int) -> np.ndarray:
    """``(len(rows), width)`` array with each row's values at its right end, ``fill`` before them."""
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for b, row in enumerate(rows):
        out[b, width - len(row) :] = row
    return out


def reference_pad_left(data: Ragged, rows: list[int], max_len: int, drop_last: int) -> PaddedBatch:
    """Per row: drop the last ``drop_last`` events, keep the last ``max_len``, add one, pad on the left."""
    _, items, times = data
    kept_items, kept_times = [], []
    for r in rows:
        end = max(0, len(items[r]) - drop_last)
        start = max(0, end - max_len)
        kept_items.append([item + 1 for item in items[r][start:end]])
        kept_times.append(times[r][start:end])
    width = max([len(row) for row in kept_items] + [1])
    return PaddedBatch(right_aligned(kept_items, width, PAD), right_aligned(kept_times, width, 0))


def reference_training_batch(
    data: Ragged, rows: list[int], max_len: int, horizon: int
) -> tuple[PaddedBatch, np.ndarray]:
    """Per row: inputs are the last ``max_len`` events but the last one; input ``p`` targets ``p + 1 ..
    p + horizon`` where the row has them."""
    _, items, times = data
    inputs, input_times, targets = [], [], []
    for r in rows:
        n = len(items[r])
        positions = list(range(max(0, n - 1 - max_len), n - 1))
        inputs.append([items[r][p] + 1 for p in positions])
        input_times.append([times[r][p] for p in positions])
        targets.append(
            [[items[r][p + k] + 1 if p + k < n else PAD for k in range(1, horizon + 1)] for p in positions]
        )
    width = max([len(row) for row in inputs] + [0])
    padded_targets = np.full((len(rows), width, horizon), PAD, dtype=np.int64)
    for b, row in enumerate(targets):
        if row:
            padded_targets[b, width - len(row) :] = row
    batch = PaddedBatch(right_aligned(inputs, width, PAD), right_aligned(input_times, width, 0))
    return batch, padded_targets


def assert_batches_equal(actual: PaddedBatch, expected: PaddedBatch) -> None:
    assert actual.items.shape == expected.items.shape
    np.testing.assert_array_equal(actual.items, expected.items)
    np.testing.assert_array_equal(actual.timestamps, expected.timestamps)
    np.testing.assert_array_equal(actual.mask, expected.items != PAD)


# --- Sequences -------------------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(data=ragged())
def test_from_frame_builds_one_row_per_user(data) -> None:
    users, items, times = data
    sequences = to_sequences(data)
    assert len(sequences) == len(users)
    assert sequences.users.tolist() == users
    assert sequences.lengths.tolist() == [len(row) for row in items]
    for r in range(len(users)):
        assert sequences.row(r).tolist() == items[r]
        assert sequences.timestamps[sequences.offsets[r] : sequences.offsets[r + 1]].tolist() == times[r]


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_subset_matches_the_reference(data) -> None:
    ragged_data = data.draw(ragged())
    users, items, times = ragged_data
    rows = data.draw(row_selections(len(users)))
    subset = to_sequences(ragged_data).subset(rows)
    assert subset.users.tolist() == [users[r] for r in rows]
    assert subset.lengths.tolist() == [len(items[r]) for r in rows]
    assert subset.items.tolist() == [item for r in rows for item in items[r]]
    assert subset.timestamps.tolist() == [time for r in rows for time in times[r]]
    assert subset.offsets[0] == 0 and len(subset.offsets) == len(rows) + 1


# --- padding ---------------------------------------------------------------------------------------------


def test_pad_left_right_aligns_the_most_recent_events() -> None:
    sequences = to_sequences(([0, 1], [[4, 5, 6], [7]], [[1, 2, 3], [9]]))
    batch = pad_left(sequences, np.array([0, 1]), max_len=2, drop_last=0)
    # model index = dataset index + 1; the last event of every row sits at column L - 1
    np.testing.assert_array_equal(batch.items, [[6, 7], [PAD, 8]])
    np.testing.assert_array_equal(batch.timestamps, [[2, 3], [0, 9]])
    np.testing.assert_array_equal(batch.mask, [[True, True], [False, True]])


def test_request_times_follow_their_rows_into_subsets_and_batches() -> None:
    sequences = to_sequences(([0, 1, 2], [[4, 5, 6], [7], [8, 9]], [[1, 2, 3], [9], [20, 30]])).at(500)
    assert sequences.request_times.tolist() == [500, 500, 500]
    asked = replace(sequences, request_times=np.array([100, 200, 300]))
    rows = np.array([2, 0])
    assert asked.subset(rows).request_times.tolist() == [300, 100]
    assert pad_left(asked, rows, max_len=2).request_times.tolist() == [300, 100]
    assert pad_left(asked, rows, max_len=2, drop_last=1).request_times is None  # not what was asked for
    assert pad_left(to_sequences(([0], [[1]], [[5]])), np.array([0]), 1).request_times is None


def test_rows_with_says_which_flags_some_event_of_each_row_has() -> None:
    sequences = to_sequences(([0, 1, 2], [[0, 2], [1], [1, 1, 3]], [[1, 2], [3], [4, 5, 6]]))
    flags = torch.tensor([[True, False], [False, False], [False, True], [True, True]])  # items 0..3
    assert sequences.event_rows.tolist() == [0, 0, 1, 2, 2, 2]
    assert sequences.rows_with(flags).tolist() == [[True, True], [False, False], [True, True]]


def test_training_rows_are_asked_for_at_their_last_inputs_target_time() -> None:
    sequences = to_sequences(([0, 1], [[1, 2, 3, 4], [5, 6]], [[10, 20, 30, 40], [50, 60]]))
    batch = training_batch(sequences, np.array([0, 1]), max_len=2)
    np.testing.assert_array_equal(batch.inputs.timestamps, [[20, 30], [0, 50]])
    assert batch.inputs.request_times.tolist() == [40, 60]  # the time of the event each row predicts last


@settings(max_examples=150, deadline=None)
@given(data=st.data(), max_len=st.integers(1, 15), drop_last=st.integers(0, 3))
def test_pad_left_matches_the_reference(data, max_len, drop_last) -> None:
    ragged_data = data.draw(ragged())
    rows = data.draw(row_selections(len(ragged_data[0])))
    batch = pad_left(to_sequences(ragged_data), rows, max_len, drop_last)
    assert_batches_equal(batch, reference_pad_left(ragged_data, rows.tolist(), max_len, drop_last))


@settings(max_examples=150, deadline=None)
@given(data=st.data(), max_len=st.integers(1, 15), horizon=st.integers(1, 4))
def test_training_batch_matches_the_reference(data, max_len, horizon) -> None:
    ragged_data = data.draw(ragged())
    rows = data.draw(row_selections(len(ragged_data[0])))
    sequences = to_sequences(ragged_data)
    batch = training_batch(sequences, rows, max_len, horizon)
    expected_inputs, expected_targets = reference_training_batch(ragged_data, rows.tolist(), max_len, horizon)
    assert_batches_equal(batch.inputs, expected_inputs)
    np.testing.assert_array_equal(batch.targets, expected_targets)
    # sources point at the targets in the flat arrays
    found = batch.sources >= 0
    np.testing.assert_array_equal(found, batch.targets != PAD)
    np.testing.assert_array_equal(sequences.items[batch.sources[found]] + 1, batch.targets[found])
    assert_asked_at_the_last_inputs_target(batch, sequences)


def assert_asked_at_the_last_inputs_target(batch: TrainingBatch, sequences: Sequences) -> None:
    """Every row with inputs asks for its next item at the time of its last input's first target."""
    if batch.inputs.items.shape[1] == 0:  # no row has an input
        return
    has_input = batch.inputs.items[:, -1] != PAD
    first_targets = batch.sources[has_input, -1, 0]
    assert np.all(first_targets >= 0)
    asked = batch.inputs.request_times[has_input]
    np.testing.assert_array_equal(asked, sequences.timestamps[first_targets])


def test_next_item_inputs_are_pad_left_without_the_last_event() -> None:
    """The docstring's promise: ``drop_last=1`` gives the inputs of next-item training."""
    sequences = to_sequences(([0, 1, 2], [[1, 2, 3, 4, 5], [6, 7], [8, 9, 10]], [[0] * 5, [0] * 2, [0] * 3]))
    rows = np.array([2, 0, 1])
    batch = training_batch(sequences, rows, max_len=3)
    np.testing.assert_array_equal(batch.inputs.items, pad_left(sequences, rows, 3, drop_last=1).items)
    np.testing.assert_array_equal(batch.targets[..., 0], [[PAD, 10, 11], [4, 5, 6], [PAD, PAD, 8]])


def reference_windows(data: Ragged, size: int) -> list[tuple[int, list[int]]]:
    """(user, items) of every window, most recent window of a row first, by slicing lists."""
    users, items, _ = data
    windows = []
    for user, row in zip(users, items, strict=True):
        end = len(row)
        while True:
            windows.append((user, row[max(0, end - size) : end]))
            if end - size <= 0:
                break
            end -= size - 1
    return windows


@settings(max_examples=150, deadline=None)
@given(data=ragged(), size=st.integers(2, 6))
def test_windows_match_the_reference_and_supervise_every_event_once(data, size) -> None:
    windows = to_sequences(data).windows(size)
    actual = [(int(windows.users[r]), windows.row(r).tolist()) for r in range(len(windows))]
    assert actual == reference_windows(data, size)
    # next-item targets (every event of a window but its first) cover each row's events 1..n-1 exactly once
    users, items, _ = data
    for user, row in zip(users, items, strict=True):
        targets = sorted(t for u, window in actual if u == user for t in window[1:])
        assert targets == sorted(row[1:])


@settings(max_examples=150, deadline=None)
@given(data=ragged(), max_len=st.integers(1, 5), horizon=st.integers(1, 4))
def test_windows_with_lookahead_supervise_every_pair_once(data, max_len, horizon) -> None:
    """Cut into windows, every (event, event k ahead) pair of a row is trained exactly once, k <= horizon."""
    users, items, times = data
    # items replaced by their flat position, so that a pair names its two events
    flat, start = [], 0
    for row in items:
        flat.append(list(range(start, start + len(row))))
        start += len(row)
    sequences = to_sequences((users, flat, times))
    windows = sequences.windows(max_len + 1, lookahead=horizon - 1)
    batch = training_batch(windows, np.arange(len(windows)), max_len, horizon)
    inputs = np.repeat(batch.inputs.items[:, :, None], horizon, axis=2)
    supervised = batch.targets != PAD
    pairs = sorted(zip(inputs[supervised].tolist(), batch.targets[supervised].tolist(), strict=True))
    expected = sorted(
        (row[p] + 1, row[p + k] + 1)
        for row in flat
        for p in range(len(row))
        for k in range(1, horizon + 1)
        if p + k < len(row)
    )
    assert pairs == expected
    assert_asked_at_the_last_inputs_target(batch, windows)
