"""Priors: which value of each prior an item or a target has (taxonomy, events, horizon, clusters)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from intentrec.data.sequences import Sequences
from intentrec.errors import IntentRecError
from intentrec.models.heads import HeadsConfig, build_priors
from intentrec.models.priors import OTHER, Prior


def sequences(rows: list[list[int]]) -> Sequences:
    offsets = np.cumsum([0, *map(len, rows)])
    items = np.array([item for row in rows for item in row], dtype=np.int32)
    return Sequences(np.arange(len(rows), dtype=np.int32), offsets, items, np.zeros(len(items), np.int64))


@pytest.fixture
def four_items(make_dataset):
    """Items 0..3 with categories {a}, {a, b}, {c}, {} ."""
    rows = [(1, item, t) for t, item in enumerate((10, 11, 12, 13))]
    return make_dataset(rows, categories=[["a"], ["a", "b"], ["c"], []])


def test_taxonomy_keeps_the_most_frequent_target_categories_and_folds_the_rest(four_items) -> None:
    # as targets (every event but a sequence's first): item 1 three times, item 0 twice, item 2 once
    train = sequences([[3, 1, 1, 0], [2, 1, 0, 2]])
    prior = Prior.taxonomy(four_items, train, max_values=3)
    assert prior.names == ["a", "b", OTHER]  # a: 5 targets, b: 3, c: 2 (folded into other)
    assert prior.membership.tolist() == [
        [True, False, False],
        [True, True, False],  # multi-label: item 1 trains both of its heads
        [False, False, True],
        [False, False, True],  # no category at all: the other head
    ]
    everything = Prior.taxonomy(four_items, train, max_values=10)
    assert everything.names == ["a", "b", "c", OTHER]
    # mapped to a coarser level first: b joins a (item 1 then has one coarse category, not two)
    coarse = Prior.taxonomy(four_items, train, max_values=10, coarser={"b": "a"})
    assert coarse.names == ["a", "c", OTHER]
    assert coarse.membership.tolist() == [
        [True, False, False],
        [True, False, False],
        [False, True, False],
        [False, False, True],
    ]


def test_a_null_category_is_no_category(four_items) -> None:
    # what polars 1.x makes of an item without categories when it explodes the lists
    nulls = four_items.items.with_columns(
        categories=four_items.items["categories"].map_elements(lambda names: list(names) or [None])
    )
    dataset = dataclasses.replace(four_items, items=nulls)
    prior = Prior.taxonomy(dataset, sequences([[3, 2, 3, 3, 0], [3, 1, 3]]), max_values=10)
    assert prior.names == ["a", "b", "c", OTHER]


# --- events, horizon and clusters ------------------------------------------------------------------


def with_rows(rows: list[list[int]]) -> Sequences:
    """Training sequences of interaction rows ``rows`` (items and rows alike, as in a one-user log)."""
    plain = sequences(rows)
    return dataclasses.replace(plain, rows=plain.items.astype(np.int64))


def test_events_prior_reads_event_types_or_rating_bands(make_dataset) -> None:
    typed = make_dataset([("u", "a", 1, "view"), ("u", "b", 2, "buy"), ("u", "c", 3, "view")])
    prior = Prior.events(typed, loved_rating=4.0)
    assert prior.names == ["view", "buy"]  # most frequent first
    assert prior.codes.tolist() == [0, 1, 0]  # one per interaction row
    targets, rows = torch.tensor([[2, 3]]), torch.tensor([[1, 2]])  # targets: b (row 1), c (row 2)
    assert prior.values(targets, rows).tolist() == [[[False, True], [True, False]]]

    rated = make_dataset([("u", "a", 1, "rating", 5.0), ("u", "b", 2, "rating", 3.0)])
    bands = Prior.events(rated, loved_rating=4.0)
    assert bands.names == ["watched", "loved"] and bands.codes.tolist() == [1, 0]
    with pytest.raises(IntentRecError, match="needs two event types or ratings"):
        Prior.events(make_dataset([("u", "a", 1), ("u", "b", 2)]), loved_rating=4.0)


def test_a_new_model_refuses_an_event_type_no_training_target_has(make_dataset) -> None:
    log = [("u", "a", 1, "view"), ("u", "b", 2, "cart"), ("u", "c", 3, "view"), ("u", "d", 4, "buy")]
    dataset, config = make_dataset(log), HeadsConfig(priors=["events"])
    with pytest.raises(IntentRecError, match=r"no training target of .* is buy .* would never learn"):
        build_priors(config, dataset, with_rows([[0, 1, 2]]))  # "buy" is the test target alone
    # a saved run loads as it was trained: every type of the log, in the log's order
    saved = build_priors(config, dataset, with_rows([[0, 1, 2]]), new=False)
    assert saved[0].names == ["view", "cart", "buy"]
    assert (
        build_priors(config, dataset, with_rows([[0, 1, 2, 3]]))[0].untrained(with_rows([[0, 1, 2, 3]])) == []
    )


def test_taxonomy_prior_without_categories_says_what_to_do(make_dataset) -> None:
    dataset = make_dataset([("u", "a", 1), ("u", "b", 2), ("u", "c", 3)])  # no item has a category
    with pytest.raises(IntentRecError, match=r"needs item categories.*--priors clusters"):
        Prior.taxonomy(dataset, sequences([[0, 1, 2]]), max_values=5)


def test_horizon_prior_cuts_the_window_into_segments() -> None:
    prior = Prior.horizon(pred_len=5, segments=2)
    assert prior.names == ["next 1-3", "next 4-5"]
    targets = torch.tensor([[4, 5, 6, 7, 0]])  # the fifth item ahead is missing
    values = prior.values(targets, None)[0]
    assert values.tolist() == [[True, False]] * 3 + [[False, True], [False, False]]
    with pytest.raises(IntentRecError, match="cannot exceed"):
        Prior.horizon(pred_len=2, segments=3)


def test_clusters_are_the_communities_of_the_co_occurrence_graph(make_dataset) -> None:
    # items 0-3 follow each other, and items 4-7 do; the two groups never meet in a sequence
    rows = []
    for user in range(6):
        group = range(4) if user % 2 else range(4, 8)
        rows += [(f"u{user}", f"i{item}", t) for t, item in enumerate([*group, *group])]
    dataset = make_dataset(rows)
    train = sequences([[0, 1, 2, 3, 0, 1, 2, 3], [4, 5, 6, 7, 4, 5, 6, 7]])
    prior = Prior.clusters(dataset, train, n_clusters=2)
    groups = {frozenset(torch.nonzero(prior.membership[:, v]).squeeze(1).tolist()) for v in range(2)}
    encoded = dict(zip(dataset.items["item"], dataset.items["item_idx"], strict=True))
    assert groups == {
        frozenset(encoded[f"i{i}"] for i in range(4)),
        frozenset(encoded[f"i{i}"] for i in range(4, 8)),
    }
    assert prior.names == ["cluster 1", "cluster 2"]
    one = Prior.clusters(dataset, train, n_clusters=1)  # the smaller community folds into "(other)"
    assert one.names == ["cluster 1", OTHER] and one.membership.sum(dim=1).tolist() == [1] * 8


def test_build_priors_refuses_priors_that_cannot_make_useful_heads(four_items, make_dataset) -> None:
    train = sequences([[0, 1, 2, 3, 1]])
    with pytest.raises(IntentRecError, match=r"coarser_categories: 'aa' is no category .*did you mean 'a'"):
        build_priors(HeadsConfig(priors=["taxonomy"], coarser_categories={"aa": "A"}), four_items, train)
    # every pair of following items is the same item: no co-occurrence edge, no community, one "(other)"
    repeats = make_dataset([("u", "a", 1), ("u", "a", 2), ("u", "b", 3)])
    with pytest.raises(IntentRecError, match=r"the clusters prior gives a single value .* \(\(other\)\)"):
        build_priors(HeadsConfig(priors=["clusters"]), repeats, sequences([[0, 0]]))
    pairs = HeadsConfig(
        priors=["taxonomy", "horizon"], composition="multiplicative", pred_len=200, segments=200
    )
    with pytest.raises(IntentRecError, match=r"give 4 × 200 = 800 heads, over 256; keep fewer values"):
        build_priors(pairs, four_items, train)
    assert (
        len(
            build_priors(
                pairs.model_copy(update={"composition": "additive", "segments": 100}), four_items, train
            )
        )
        == 2
    )


def test_the_taxonomy_message_says_when_items_have_categories_but_no_training_target_does(four_items) -> None:
    with pytest.raises(IntentRecError, match=r"no training target of .* has one \(3 items have categories\)"):
        Prior.taxonomy(four_items, sequences([[3, 3]]), max_values=5)
