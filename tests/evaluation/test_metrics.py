"""Tests for intentrec.evaluation.metrics: parity with a plain-Python reference, known values, errors."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from intentrec.evaluation.metrics import (
    METRICS,
    MetricAccumulator,
    count_targets,
    hit_matrix,
    metric_names,
    rank_hits,
    ranking_metrics,
)

# A generated case: top lists (B, K_max), padded target lists (B, T), cut-offs.
Case = tuple[list[list[int]], list[list[int]], list[int]]

# --- reference implementation: slow and obvious, straight from the definitions ----------------------------


def reference_metrics(
    top_lists: list[list[int]], target_lists: list[list[int]], ks: list[int]
) -> dict[str, list[float]]:
    """Per-user metric values computed one user at a time with sets and math.log2."""
    values: dict[str, list[float]] = {name: [] for name in metric_names(ks)}
    for top, padded_targets in zip(top_lists, target_lists, strict=True):
        targets = {item for item in padded_targets if item != -1}
        for k in ks:
            hit_ranks = [rank for rank, item in enumerate(top[:k], start=1) if item in targets]
            dcg = sum(1 / math.log2(rank + 1) for rank in hit_ranks)
            idcg = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(targets), k) + 1))
            values[f"hr@{k}"].append(1.0 if hit_ranks else 0.0)
            values[f"recall@{k}"].append(len(hit_ranks) / len(targets))
            values[f"ndcg@{k}"].append(dcg / idcg)
            values[f"mrr@{k}"].append(1 / hit_ranks[0] if hit_ranks else 0.0)
    return values


def vectorised_metrics(
    top_lists: list[list[int]], target_lists: list[list[int]], ks: list[int]
) -> dict[str, torch.Tensor]:
    targets = torch.tensor(target_lists, dtype=torch.long)
    hits = hit_matrix(torch.tensor(top_lists, dtype=torch.long), targets)
    return ranking_metrics(hits, count_targets(targets), ks)


@st.composite
def rankings(draw: st.DrawFn) -> Case:
    """Random users: distinct top lists, padded targets (duplicates allowed, padding anywhere), cut-offs."""
    n_users = draw(st.integers(1, 8))
    k_max = draw(st.integers(1, 12))
    # A small item universe makes hits, and targets outside the top list, both common.
    n_items = draw(st.integers(k_max, k_max + 15))
    width = draw(st.integers(1, 6))  # T, the padded number of targets
    items = st.integers(0, n_items - 1)
    top_lists, target_lists = [], []
    for _ in range(n_users):
        top_lists.append(draw(st.lists(items, min_size=k_max, max_size=k_max, unique=True)))
        real = draw(st.lists(items, min_size=1, max_size=width))
        padded = draw(st.permutations(real + [-1] * (width - len(real))))
        target_lists.append(list(padded))
    ks = draw(st.lists(st.integers(1, k_max), min_size=1, max_size=4, unique=True))
    return top_lists, target_lists, ks


# --- parity with the reference -----------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(rankings())
def test_matches_reference(case: Case) -> None:
    top_lists, target_lists, ks = case
    expected = reference_metrics(top_lists, target_lists, ks)
    actual = vectorised_metrics(top_lists, target_lists, ks)
    assert list(actual) == list(expected) == metric_names(ks)
    for name, values in actual.items():
        assert values.shape == (len(top_lists),)
        assert values.tolist() == pytest.approx(expected[name], abs=1e-6), name


@settings(max_examples=200, deadline=None)
@given(rankings())
def test_count_targets_counts_distinct_items(case: Case) -> None:
    _, target_lists, _ = case
    expected = [len(set(row) - {-1}) for row in target_lists]
    assert count_targets(torch.tensor(target_lists)).tolist() == expected


# --- hand-made cases -------------------------------------------------------------------------------------


def test_single_target_at_rank_three() -> None:
    values = vectorised_metrics([[9, 8, 7, 6]], [[7]], ks=[2, 4])
    assert values["hr@2"].item() == 0.0
    assert values["mrr@2"].item() == 0.0
    assert values["ndcg@2"].item() == 0.0
    assert values["hr@4"].item() == 1.0
    assert values["recall@4"].item() == 1.0
    assert values["ndcg@4"].item() == pytest.approx(0.5)  # 1 / log2(4)
    assert values["mrr@4"].item() == pytest.approx(1 / 3)


def test_two_targets_one_at_rank_one() -> None:
    values = vectorised_metrics([[4, 0, 1], [0, 4, 1]], [[4, 2], [2, 4]], ks=[1, 3])
    # User 0 has target 4 at rank 1: the one slot of the top 1 is as good as it can be.
    assert values["recall@1"][0].item() == 0.5
    assert values["ndcg@1"][0].item() == 1.0
    assert values["mrr@1"][0].item() == 1.0
    # User 1 has target 4 at rank 2; IDCG@3 counts two ideal hits at ranks 1 and 2.
    assert values["hr@1"][1].item() == 0.0
    assert values["recall@3"][1].item() == 0.5
    assert values["ndcg@3"][1].item() == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert values["mrr@3"][1].item() == 0.5


def test_duplicate_targets_count_once() -> None:
    targets = torch.tensor([[3, 3, -1, 5]])
    hits = hit_matrix(torch.tensor([[3, 1, 2]]), targets)
    assert hits.tolist() == [[True, False, False]]
    assert count_targets(targets).tolist() == [2]
    assert ranking_metrics(hits, count_targets(targets), [3])["recall@3"].item() == 0.5


def test_all_targets_in_top_gives_perfect_scores() -> None:
    values = vectorised_metrics([[2, 1, 0, 5]], [[1, 2, -1]], ks=[2, 4])
    assert all(value.item() == pytest.approx(1.0) for value in values.values())


# --- hits from the targets' ranks ------------------------------------------------------------------------


def pessimistic_hits(scores: torch.Tensor, targets: torch.Tensor, k_max: int) -> torch.Tensor:
    """The reference: each row ranked by score, an item that is no target first among equal scores,
    excluded items (-inf) and NaN never listed; True at the ranks below ``k_max`` holding a target."""
    hits = torch.zeros(scores.shape[0], k_max, dtype=torch.bool)
    for row, (row_scores, row_targets) in enumerate(zip(scores.tolist(), targets.tolist(), strict=True)):
        wanted = {item for item in row_targets if item >= 0}
        ranked = sorted(
            (item for item, score in enumerate(row_scores) if score > float("-inf")),
            key=lambda item: (-row_scores[item], item in wanted),
        )
        for rank, item in enumerate(ranked[:k_max]):
            hits[row, rank] = item in wanted
    return hits


@settings(max_examples=300, deadline=None)
@given(
    n_users=st.integers(1, 6),
    n_items=st.integers(1, 30),
    n_targets=st.integers(1, 4),
    k_max=st.integers(1, 40),
    levels=st.sampled_from([3, 1000]),  # few distinct scores (many ties) or almost none alike
    seed=st.integers(0, 2**31 - 1),
)
def test_rank_hits_match_a_ranking_that_puts_targets_last_among_ties(
    n_users: int, n_items: int, n_targets: int, k_max: int, levels: int, seed: int
) -> None:
    generator = torch.Generator().manual_seed(seed)
    scores = torch.randint(0, levels, (n_users, n_items), generator=generator).float()
    scores[torch.rand(n_users, n_items, generator=generator) < 0.2] = float("-inf")  # seen items
    scores[torch.rand(n_users, n_items, generator=generator) < 0.05] = float("nan")  # a model gone wrong
    targets = torch.randint(-1, n_items, (n_users, n_targets), generator=generator)  # repeats, padding
    expected = pessimistic_hits(scores, targets, k_max)
    assert torch.equal(rank_hits(scores, targets, k_max), expected)
    top_scores = torch.topk(scores, min(k_max, n_items), dim=1).values
    assert torch.equal(rank_hits(scores, targets, k_max, top_scores), expected)
    # a chunk pads every row to its widest: a row alone, or beside others, is ranked alike
    alone = torch.cat(
        [rank_hits(scores[row : row + 1], targets[row : row + 1], k_max) for row in range(n_users)]
    )
    assert torch.equal(alone, expected)


def test_rank_hits_agree_with_the_top_list_without_ties() -> None:
    scores = torch.tensor([[0.9, 0.2, 0.7, 0.4, float("-inf")]])
    targets = torch.tensor([[2, 3, 4]])  # item 4 was seen
    top_scores, top_items = torch.topk(scores, 4, dim=1)
    listed = hit_matrix(top_items, targets) & (top_scores > float("-inf"))
    assert torch.equal(rank_hits(scores, targets, 4), listed)
    assert listed.int().tolist() == [[0, 1, 1, 0]]


def test_rank_hits_count_ties_against_the_targets() -> None:
    scores = torch.tensor([[0.5, 0.9, 0.5, 0.1], [0.3, 0.3, 0.3, 0.3]])
    # row 0: item 1 above and item 0 level with target 2, so rank 2; row 1: every item alike, rank 3
    assert rank_hits(scores, torch.tensor([[2], [0]]), k_max=3).tolist() == [
        [False, False, True],
        [False, False, False],
    ]
    # two targets among four alike items: the two others come first, whatever the top list's order
    assert rank_hits(scores[1:], torch.tensor([[0, 1]]), k_max=4).int().tolist() == [[0, 0, 1, 1]]


def test_rank_hits_never_hit_an_excluded_target_or_nan() -> None:
    scores = torch.tensor([[float("-inf"), 1.0, 2.0], [float("nan"), 1.0, 2.0], [0.0, 1.0, 2.0]])
    hits = rank_hits(scores, torch.tensor([[0], [0], [-1]]), k_max=5)  # k_max above the catalogue
    assert not hits.any()
    assert not rank_hits(scores, torch.tensor([[0, -1], [0, 0], [-1, -1]]), k_max=5).any()


def test_rank_hits_need_a_row_of_targets_per_user() -> None:
    with pytest.raises(ValueError, match="one row per user"):
        rank_hits(torch.zeros(2, 4), torch.tensor([[1, 2]]), k_max=2)


def test_metric_names() -> None:
    assert metric_names([5, 10], names=("hr", "ndcg")) == ["hr@5", "hr@10", "ndcg@5", "ndcg@10"]
    assert metric_names([1]) == [f"{name}@1" for name in METRICS]


# --- the accumulator ---------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=60).flatmap(
        lambda column: st.tuples(
            st.just(column), st.lists(st.integers(0, len(column)), max_size=6).map(sorted)
        )
    )
)
def test_accumulator_is_independent_of_chunking(case: tuple[list[float], list[int]]) -> None:
    column, cuts = case
    values = torch.tensor(column, dtype=torch.float64)
    whole = MetricAccumulator()
    whole.add({"a": values, "b": 1 - values})
    chunked = MetricAccumulator()
    for start, stop in zip([0, *cuts], [*cuts, len(column)], strict=True):
        chunked.add({"a": values[start:stop], "b": 1 - values[start:stop]})
    assert chunked.n_users == whole.n_users == len(column)
    assert chunked.means() == whole.means()  # exactly, not approximately
    assert whole.means()["a"] == pytest.approx(math.fsum(column) / len(column), abs=1e-9)


def test_accumulator_means_of_ranking_metrics() -> None:
    accumulator = MetricAccumulator()
    accumulator.add(vectorised_metrics([[9, 8, 7, 6]], [[7]], ks=[4]))
    accumulator.add(vectorised_metrics([[0, 1, 2, 3], [5, 6, 7, 8]], [[0], [4]], ks=[4]))
    means = accumulator.means()
    assert list(means) == metric_names([4])
    assert all(isinstance(value, float) for value in means.values())
    assert accumulator.n_users == 3
    assert means["hr@4"] == pytest.approx(2 / 3)
    assert means["ndcg@4"] == pytest.approx(1.5 / 3)
    assert means["mrr@4"] == pytest.approx((1 / 3 + 1) / 3)


# --- every ValueError ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ks", "match"),
    [([], "non-empty"), ("5", "non-empty"), ([0], "positive integers"), ([True], "positive integers")],
)
def test_bad_ks(ks: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        metric_names(ks)  # type: ignore[arg-type]


def test_k_above_k_max() -> None:
    with pytest.raises(ValueError, match="only has the top 3 items"):
        ranking_metrics(torch.zeros(2, 3, dtype=torch.bool), torch.ones(2, dtype=torch.long), [5])


def test_unknown_metric_name() -> None:
    with pytest.raises(ValueError, match="did you mean 'ndcg'"):
        metric_names([10], names=("ndgc",))


@pytest.mark.parametrize(
    ("top_items", "targets", "match"),
    [
        (torch.tensor([1, 2]), torch.tensor([[1]]), "top_items must be a 2-D"),
        (torch.tensor([[1.0, 2.0]]), torch.tensor([[1]]), "top_items must hold integer"),
        (torch.tensor([[1, 2]]), torch.tensor([[True]]), "targets must hold integer"),
        (torch.tensor([[1, 2]]), torch.tensor([[1], [2]]), "one row per user"),
        (torch.tensor([[1, -1]]), torch.tensor([[1]]), "top_items must hold item indices >= 0"),
        (torch.tensor([[1, 2], [3, 3]]), torch.tensor([[1], [3]]), "row 1 does"),
        (torch.tensor([[1, 2]]), torch.tensor([[-2]]), "or -1 for padding"),
    ],
)
def test_hit_matrix_rejects(top_items: torch.Tensor, targets: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hit_matrix(top_items, targets)


def test_count_targets_rejects_bad_padding() -> None:
    with pytest.raises(ValueError, match="or -1 for padding"):
        count_targets(torch.tensor([[4, -7]]))


@pytest.mark.parametrize(
    ("hits", "n_targets", "match"),
    [
        (torch.ones(2, 3), torch.ones(2, dtype=torch.long), "hits must be a 2-D bool"),
        (torch.ones(3, dtype=torch.bool), torch.ones(3, dtype=torch.long), "hits must be a 2-D bool"),
        (torch.ones(2, 3, dtype=torch.bool), torch.ones(3, dtype=torch.long), r"shape \(2,\)"),
        (torch.ones(2, 3, dtype=torch.bool), torch.ones(2), r"shape \(2,\)"),
        (torch.ones(2, 3, dtype=torch.bool), torch.tensor([3, 0]), "row 1 has 0"),
        (torch.ones(2, 3, dtype=torch.bool), torch.tensor([3, 2]), "row 1 of hits has 3 hits"),
    ],
)
def test_ranking_metrics_rejects(hits: torch.Tensor, n_targets: torch.Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ranking_metrics(hits, n_targets, [2])


def test_accumulator_rejects_changed_metrics() -> None:
    accumulator = MetricAccumulator()
    accumulator.add({"hr@10": torch.ones(2)})
    with pytest.raises(ValueError, match="same metrics"):
        accumulator.add({"ndcg@10": torch.ones(2)})


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({}, "at least one metric"),
        ({"a": torch.ones(2), "b": torch.ones(3)}, "same B"),
        ({"a": torch.ones(2, 1)}, r"shape \(B,\)"),
        ({"a": torch.tensor([0.5, 1.5])}, "'a' is 1.5 for row 1"),
        ({"a": torch.tensor([-0.1])}, r"in \[0, 1\]"),
        ({"a": torch.tensor([float("nan")])}, "'a' is nan"),
    ],
)
def test_accumulator_rejects_bad_values(values: dict[str, torch.Tensor], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        MetricAccumulator().add(values)


def test_accumulator_means_needs_users() -> None:
    with pytest.raises(ValueError, match="no users"):
        MetricAccumulator().means()
