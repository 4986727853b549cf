"""Beyond-accuracy metrics on small hand-made catalogues, and against brute force on random lists."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from intentrec.data.sequences import Sequences
from intentrec.data.split import EvalSet
from intentrec.evaluation.beyond_accuracy import BeyondAccuracy, CategoryBreakdown, ItemFeatures
from intentrec.evaluation.evaluator import EvalConfig, evaluate
from intentrec.evaluation.metrics import count_targets, hit_matrix, ranking_metrics

#: item -> categories: 0 {a}, 1 {a}, 2 {b}, 3 {a, b}, 4 {}, 5 {}
CATEGORIES = [["a"], ["a"], ["b"], ["a", "b"], [], []]


def features(train_counts: list[int] | None = None) -> ItemFeatures:
    categories = torch.tensor([[name in item for name in ("a", "b")] for item in CATEGORIES])
    counts = torch.tensor(train_counts or [0] * len(CATEGORIES), dtype=torch.int64)
    return ItemFeatures(categories, ["a", "b"], counts)


def sequences(rows: list[list[int]]) -> Sequences:
    offsets = np.cumsum([0, *map(len, rows)])
    items = np.array([item for row in rows for item in row], dtype=np.int32)
    return Sequences(np.arange(len(rows), dtype=np.int32), offsets, items, np.zeros(len(items), np.int64))


def measure(
    lists: list[list[int]],
    ks: list[int],
    histories: list[list[int]] | None = None,
    targets: list[list[int]] | None = None,
    item_features: ItemFeatures | None = None,
) -> dict[str, float]:
    top_items = torch.tensor(lists)
    target_rows = targets or [[row[0]] for row in lists]
    padded = torch.tensor([row + [-1] * (3 - len(row)) for row in target_rows])
    hits = hit_matrix(top_items, padded)
    accuracy = ranking_metrics(hits, count_targets(padded), ks)
    beyond = BeyondAccuracy(item_features or features(), ks)
    history = sequences(histories or [[5]] * len(lists))
    beyond.add(top_items, torch.ones_like(top_items, dtype=torch.bool), padded, history, accuracy)
    return beyond.means()


@pytest.mark.parametrize(
    ("top", "entropy", "ild"),
    [
        ([0, 1], 0.0, 0.0),  # one category twice
        ([0, 2], 1.0, 1.0),  # two categories, nothing shared
        ([0, 3], -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3)), 0.5),  # a, a, b; Jaccard 1/2
        ([4, 5], 0.0, 0.0),  # no categories at all: no variety, and no distance between the two
        ([0, 4], 0.0, 1.0),  # a category against none
    ],
)
def test_entropy_and_intra_list_diversity_of_one_list(top: list[int], entropy: float, ild: float) -> None:
    values = measure([top], ks=[2])
    assert values["entropy@2"] == pytest.approx(entropy, abs=1e-9)
    assert values["ild@2"] == pytest.approx(ild, abs=1e-9)


def test_ild_averages_over_pairs_and_each_cutoff_reads_its_own_prefix() -> None:
    values = measure([[0, 2, 1]], ks=[1, 3])
    assert values["ild@1"] == 0.0  # a single item has no pair
    assert values["ild@3"] == pytest.approx((1 + 0 + 1) / 3)  # (0,2) (0,1) (2,1)
    assert values["entropy@3"] == pytest.approx(-(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3)))


def test_novelty_is_normalised_self_information() -> None:
    counts = [6, 2, 0, 0, 0, 0]  # N = 8 training interactions, 6 items: p_i = (n_i + 1) / 14
    values = measure([[0, 2]], ks=[1, 2], item_features=features(counts))

    def information(n: int) -> float:
        return -math.log2((n + 1) / 14) / math.log2(14)

    assert values["novelty@1"] == pytest.approx(information(6))
    assert values["novelty@2"] == pytest.approx((information(6) + information(0)) / 2)
    assert 0 < values["novelty@1"] < values["novelty@2"] < 1  # the unseen item is the most novel


def test_list_metrics_do_not_depend_on_the_order_within_the_list() -> None:
    # at K = 50 ILD sums 2,450 distances and novelty 50 values; in float32 a list and its shuffle could
    # differ in the last bits, so that re-ranking the same items in another chunk "changed" the metrics
    generator = torch.Generator().manual_seed(0)
    n_items = 300
    categories = torch.rand(n_items, 9, generator=generator) < 0.3
    counts = torch.randint(0, 1000, (n_items,), generator=generator)
    item_features = ItemFeatures(categories, [f"c{c}" for c in range(9)], counts)
    lists = [torch.randperm(n_items, generator=generator)[:50].tolist() for _ in range(40)]
    shuffled = [[row[i] for i in torch.randperm(50, generator=generator).tolist()] for row in lists]
    targets = [[row[0]] for row in lists]
    ordered = measure(lists, ks=[50], targets=targets, item_features=item_features)
    reordered = measure(shuffled, ks=[50], targets=targets, item_features=item_features)
    for name in ("entropy@50", "ild@50", "novelty@50"):
        assert ordered[name] == reordered[name], name


def test_coverage_and_personalisation_over_users() -> None:
    values = measure([[0, 1], [0, 2], [3, 4]], ks=[2])
    assert values["coverage@2"] == pytest.approx(5 / 6)  # item 5 is in no list
    # pairs (1,2) share one item of 2, (1,3) and (2,3) none: mean overlap 1/6
    assert values["personalisation@2"] == pytest.approx(1 - 1 / 6)
    same = measure([[0, 1], [0, 1]], ks=[2])
    assert same["personalisation@2"] == 0.0 and same["coverage@2"] == pytest.approx(2 / 6)


def test_personalisation_matches_brute_force_on_random_lists() -> None:
    generator = torch.Generator().manual_seed(0)
    lists = [torch.randperm(6, generator=generator)[:3].tolist() for _ in range(7)]
    pairs = list(itertools.combinations(lists, 2))
    overlap = sum(len(set(a) & set(b)) for a, b in pairs) / len(pairs) / 3
    assert measure(lists, ks=[3])["personalisation@3"] == pytest.approx(1 - overlap)


def test_exploration_users_have_a_target_category_new_to_them() -> None:
    # user 0 knows only "a" and its target (2) is "b": exploring; user 1's target (1) is "a": not;
    # user 2's target (4) has no category: not exploring.
    values = measure([[2, 0], [0, 1], [4, 0]], ks=[1, 2], histories=[[0], [3], [1]], targets=[[2], [1], [4]])
    assert values["explore_users"] == pytest.approx(1 / 3)
    assert values["explore_recall@1"] == 1.0  # user 0 has its target first
    assert values["explore_ndcg@2"] == 1.0
    nobody = measure([[0, 1]], ks=[1], histories=[[3]], targets=[[0]])
    assert nobody["explore_users"] == 0.0 and nobody["explore_recall@1"] == 0.0


def test_seen_items_left_in_a_short_list_count_for_nothing() -> None:
    beyond = BeyondAccuracy(features(), ks=[2])
    top_items = torch.tensor([[2, 0]])
    listed = torch.tensor([[True, False]])  # rank 2 holds a seen item: no recommendation there
    targets = torch.tensor([[2]])
    accuracy = ranking_metrics(hit_matrix(top_items, targets) & listed, count_targets(targets), [2])
    beyond.add(top_items, listed, targets, sequences([[0]]), accuracy)
    values = beyond.means()
    assert values["entropy@2"] == 0.0 and values["ild@2"] == 0.0
    assert values["coverage@2"] == pytest.approx(1 / 6)
    beyond = BeyondAccuracy(features(), ks=[3])
    top_items, listed = torch.tensor([[0, 2, 1]]), torch.tensor([[True, True, False]])
    accuracy = ranking_metrics(hit_matrix(top_items, targets) & listed, count_targets(targets), [3])
    beyond.add(top_items, listed, targets, sequences([[1]]), accuracy)
    assert beyond.means()["ild@3"] == 1.0  # the one listed pair (0, 2); the unlisted rank adds no pair


def test_item_features_from_a_dataset(make_dataset) -> None:
    dataset = make_dataset([(1, 10, 1), (1, 11, 2), (2, 10, 3)], categories=[["x", "y"], []])
    train = sequences([[0, 1], [0]])
    item_features = ItemFeatures.from_dataset(dataset, train)
    assert item_features.category_names == ["x", "y"]
    assert item_features.categories.tolist() == [[True, True], [False, False]]
    assert item_features.train_counts.tolist() == [2, 1]


def test_evaluate_reports_beyond_accuracy_next_to_accuracy() -> None:
    history = sequences([[0], [3]])
    eval_set = EvalSet(history=history, targets=sequences([[2], [1]]))

    def score(batch, histories) -> torch.Tensor:  # the same fixed preference for everyone: 2 > 1 > 4 > ...
        return torch.tensor([[0.0, 5.0, 6.0, 1.0, 4.0, 3.0]]).expand(len(batch.items), -1).clone()

    metrics = evaluate(score, eval_set, max_len=5, config=EvalConfig(ks=[2]), features=features())
    assert metrics["recall@2"] == 1.0
    assert metrics["personalisation@2"] == 0.0  # both users get [2, 1]
    assert metrics["coverage@2"] == pytest.approx(2 / 6)
    assert metrics["explore_users"] == 0.5 and metrics["explore_recall@2"] == 1.0
    assert "entropy@2" not in evaluate(score, eval_set, max_len=5, config=EvalConfig(ks=[2]))


def test_per_category_accuracy_averages_over_the_users_with_a_target_there() -> None:
    # user 0: target 3 {a, b} hit at rank 1; user 1: target 2 {b} missed; user 2: target 4 {} hit at rank 2
    top_items = torch.tensor([[3, 0], [0, 1], [5, 4]])
    targets = torch.tensor([[3], [2], [4]])
    accuracy = ranking_metrics(hit_matrix(top_items, targets), count_targets(targets), [2])
    breakdown = CategoryBreakdown(features(), k=2)
    breakdown.add(targets[:2], {name: value[:2] for name, value in accuracy.items()})  # two chunks
    breakdown.add(targets[2:], {name: value[2:] for name, value in accuracy.items()})
    assert breakdown.results() == {
        "b": {"recall@2": 0.5, "ndcg@2": 0.5, "users": 2},  # users 0 and 1; most users first
        "a": {"recall@2": 1.0, "ndcg@2": 1.0, "users": 1},  # user 0 only; user 2's target has no category
    }
