"""Full-catalogue ranking: seen items are removed from the whole history, not only from what is read."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
import torch

from intentrec.data.sequences import PaddedBatch, Sequences
from intentrec.ranking import mask_seen, padded_targets, ranked_chunks

N_ITEMS = 12


def sequences(histories: list[list[int]]) -> Sequences:
    lengths = [len(history) for history in histories]
    return Sequences(
        users=np.arange(len(histories), dtype=np.int32),
        offsets=np.concatenate(([0], np.cumsum(lengths))).astype(np.int64),
        items=np.array([item for history in histories for item in history], dtype=np.int32),
        timestamps=np.concatenate([np.arange(length) for length in lengths]).astype(np.int64),
    )


class FavoursLowIds:
    """A score function ranking item 0 first, then 1, ...: the items the histories below start with."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, int]] = []  # (rows, width) of every batch scored

    def __call__(self, batch: PaddedBatch, histories: Sequences) -> torch.Tensor:
        self.shapes.append(batch.items.shape)
        return torch.arange(N_ITEMS, 0, -1, dtype=torch.float32).repeat(len(batch.items), 1)


#: Row 0's best items (0, 1, 2) are older than the 3 events a max_len = 3 model reads.
HISTORIES = [[0, 1, 2, 9, 10, 11], [5], [1, 3]]


def top_lists(filter_seen: bool, k: int = 3, chunk_size: int = 2, score=None) -> list[list[int]]:
    history = sequences(HISTORIES)
    tops: dict[int, list[int]] = {}
    for chunk_rows, items, scores in ranked_chunks(
        score or FavoursLowIds(), history, k, 3, filter_seen, chunk_size
    ):
        assert items.shape == scores.shape == (len(chunk_rows), k)
        tops.update(zip(chunk_rows.tolist(), items.tolist(), strict=True))
    assert sorted(tops) == list(range(len(HISTORIES)))  # every row exactly once
    return [tops[row] for row in range(len(HISTORIES))]


def test_chunks_hold_rows_of_similar_length_shortest_first() -> None:
    # lengths (capped at max_len = 3) are 3, 1, 2: one row per chunk gives rows 1, 2, 0
    chunks = ranked_chunks(FavoursLowIds(), sequences(HISTORIES), 2, 3, chunk_size=1)
    assert [rows.tolist() for rows, _, _ in chunks] == [[1], [2], [0]]


@pytest.mark.parametrize("chunk_events", [1, 3, 4, 6, 100])
def test_chunk_events_bound_the_padded_events_a_chunk_reads(chunk_events: int) -> None:
    score = FavoursLowIds()
    lengths = np.array([3, 1, 2, 1, 3, 3, 2, 1])
    history = sequences([[1] * length for length in lengths])
    ranked = ranked_chunks(score, history, 2, 3, chunk_size=4, chunk_events=chunk_events)
    chunks = [rows for rows, _, _ in ranked]
    for rows, width in score.shapes:
        assert rows <= 4 and (rows * width <= chunk_events or rows == 1)
    # as few chunks as the limits allow: the next chunk's first row would not have fitted
    for rows, next_rows in pairwise(chunks):
        assert len(rows) == 4 or (len(rows) + 1) * lengths[next_rows[0]] > chunk_events
    assert sorted(np.concatenate(chunks).tolist()) == list(range(len(lengths)))


def test_filter_seen_removes_every_item_of_the_history_even_beyond_max_len() -> None:
    score = FavoursLowIds()
    tops = top_lists(filter_seen=True, score=score)
    assert tops == [[3, 4, 5], [0, 1, 2], [0, 2, 4]]
    for top, history in zip(tops, HISTORIES, strict=True):
        assert not set(top) & set(history)
    assert max(width for _, width in score.shapes) == 3  # the model itself only read the last max_len events


def test_without_filter_seen_items_can_be_recommended() -> None:
    assert top_lists(filter_seen=False) == [[0, 1, 2]] * 3


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 100])
def test_chunk_size_does_not_change_the_lists(chunk_size: int) -> None:
    assert top_lists(True, chunk_size=chunk_size) == top_lists(True, chunk_size=1)


def test_when_fewer_than_k_items_are_left_seen_items_only_fill_the_tail_at_minus_inf() -> None:
    history = sequences([list(range(N_ITEMS - 2))])  # two unseen items left
    [(_, items, scores)] = ranked_chunks(FavoursLowIds(), history, 5, 3)
    finite = torch.isfinite(scores[0])
    assert finite.tolist() == [True, True, False, False, False]
    assert items[0, finite].tolist() == [N_ITEMS - 2, N_ITEMS - 1]


def test_k_larger_than_the_catalogue_gives_the_whole_catalogue() -> None:
    [(_, items, _)] = ranked_chunks(FavoursLowIds(), sequences([[4]]), 50, 3, filter_seen=False)
    assert sorted(items[0].tolist()) == list(range(N_ITEMS))


def test_mask_seen_and_padded_targets() -> None:
    history = sequences([[1, 1, 4], [], [0]])
    scores = torch.zeros(2, 5)
    mask_seen(scores, history.subset(np.array([2, 0])))  # rows in any order
    assert torch.isinf(scores).tolist() == [
        [True, False, False, False, False],
        [False, True, False, False, True],
    ]
    targets = padded_targets(sequences([[3], [4, 2], []]), np.array([0, 1, 2]))
    assert targets.tolist() == [[-1, 3], [4, 2], [-1, -1]]
