"""Prior heads: the taxonomy prior, the heads' scoring and steering, their loss, and a run end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch

from intentrec.config import RunConfig
from intentrec.data.sequences import Sequences
from intentrec.errors import IntentRecError
from intentrec.models.heads import OTHER, HeadsConfig, Prior, PriorHeads, prior_heads_loss
from intentrec.recommender import Recommender
from intentrec.serving.service import Service

DIM = 8


def with_categories(dataset, categories: list[list[str]]):
    return dataset.__class__(
        interactions=dataset.interactions,
        users=dataset.users,
        items=dataset.items.with_columns(categories=pl.Series(categories, dtype=pl.List(pl.String))),
        card=dataset.card,
    )


def sequences(rows: list[list[int]]) -> Sequences:
    offsets = np.cumsum([0, *map(len, rows)])
    items = np.array([item for row in rows for item in row], dtype=np.int32)
    return Sequences(np.arange(len(rows), dtype=np.int32), offsets, items, np.zeros(len(items), np.int64))


@pytest.fixture
def four_items(make_dataset):
    """Items 0..3 with categories {a}, {a, b}, {c}, {} ."""
    rows = [(1, item, t) for t, item in enumerate((10, 11, 12, 13))]
    return with_categories(make_dataset(rows), [["a"], ["a", "b"], ["c"], []])


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


def heads_for(names: list[str], membership: list[list[bool]], **config) -> PriorHeads:
    torch.manual_seed(0)
    heads = PriorHeads(DIM, Prior(names, torch.tensor(membership)), HeadsConfig(prior="taxonomy", **config))
    with torch.no_grad():
        heads.weight.normal_(0, 0.5)
    return heads


@pytest.mark.parametrize("cosine", [False, True])
def test_heads_start_as_the_identity(cosine: bool) -> None:
    config = HeadsConfig(cosine=cosine)
    heads = PriorHeads(DIM, Prior(["a", "b"], torch.ones(3, 2, dtype=torch.bool)), config)
    hidden = torch.randn(4, DIM)
    queries = heads(hidden)
    assert queries.shape == (4, 2, DIM)
    expected = torch.nn.functional.normalize(hidden, dim=-1) if cosine else hidden
    torch.testing.assert_close(queries, expected[:, None].expand(-1, 2, -1))
    torch.testing.assert_close(heads.query(hidden, 1), expected)
    assert heads.parameter_count() == 2 * (DIM * DIM + DIM)


@pytest.mark.parametrize("cosine", [False, True])
def test_an_item_scores_by_its_best_allowed_head_and_weights_steer(cosine: bool) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, True], [False, True]], cosine=cosine)
    hidden, items = torch.randn(2, DIM), torch.randn(4, DIM)  # items row 0 is padding
    scores, head = heads.score(hidden, items)
    unit = torch.nn.functional.normalize(items[1:], dim=-1) if cosine else items[1:]
    per_head = heads.scale() * heads(hidden) @ unit.T  # (B, H, n)
    torch.testing.assert_close(scores[:, 0], per_head[:, 0, 0])  # item 0 only has head a
    torch.testing.assert_close(scores[:, 2], per_head[:, 1, 2])  # item 2 only has head b
    torch.testing.assert_close(scores[:, 1], per_head[:, :, 1].max(dim=1).values)
    assert head[:, 0].tolist() == [0, 0] and head[:, 2].tolist() == [1, 1]

    only_a, _ = heads.score(hidden, items, head_weights=torch.tensor([1.0, 0.0]))
    assert torch.isinf(only_a[:, 2]).all()  # only head b may give item 2
    torch.testing.assert_close(only_a[:, 1], per_head[:, 0, 1])
    favour_b, _ = heads.score(hidden, items, head_weights=torch.tensor([1.0, 5.0]))
    torch.testing.assert_close(favour_b[:, 2], per_head[:, 1, 2] + np.log(5.0))


@pytest.mark.parametrize(("objective", "cosine"), [("softmax", False), ("sampled", True)])
def test_a_head_learns_only_from_targets_of_its_value(objective: str, cosine: bool) -> None:
    heads = heads_for(
        ["a", "b"], [[True, False], [True, False], [False, True]], objective=objective, cosine=cosine
    )
    items = torch.randn(4, DIM)
    hidden = torch.randn(3, DIM)
    prior_heads_loss(heads, hidden, torch.tensor([1, 2, 1]), items).backward()  # targets: items 0, 1, 0
    assert heads.weight.grad[0].abs().sum() > 0
    assert heads.weight.grad[1].abs().sum() == 0  # no target in b
    if cosine:
        assert torch.isfinite(heads.log_scale.grad)


def test_the_softmax_objective_is_cross_entropy_within_the_heads_group() -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, False], [False, True]])
    items, hidden = torch.randn(4, DIM), torch.randn(1, DIM)
    loss = prior_heads_loss(heads, hidden, torch.tensor([2]), items)  # target item 1, in group a = {0, 1}
    logits = heads.query(hidden, 0) @ items[1:3].T  # the candidates: items 0 and 1 only
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, torch.tensor([1])))


def test_in_group_negatives_come_from_the_heads_own_category(monkeypatch) -> None:
    membership = [[True, False], [True, False], [False, True], [False, True]]
    heads = heads_for(["a", "b"], membership, objective="sampled", cosine=True)
    drawn: list[torch.Tensor] = []
    real_randint = torch.randint

    def recording_randint(high, size, **kwargs):
        values = real_randint(high, size, **kwargs)
        drawn.append(values)
        return values

    monkeypatch.setattr(torch, "randint", recording_randint)
    prior_heads_loss(heads, torch.randn(2, DIM), torch.tensor([1, 3]), torch.randn(5, DIM))
    pools = [heads.membership[:, head].nonzero().squeeze(1) for head in range(2)]
    assert [set(pool[draw].tolist()) <= set(pool.tolist()) for pool, draw in zip(pools, drawn, strict=True)]
    assert {1, 2} >= set(pools[0][drawn[0]].tolist()) and {3, 4} >= set(pools[1][drawn[1]].tolist())


def test_frequency_weights_average_over_position_head_pairs(monkeypatch) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, False], [False, True], [False, True]])
    items, hidden, targets = torch.randn(5, DIM), torch.randn(3, DIM), torch.tensor([1, 1, 3])
    torch.manual_seed(1)
    weighted = prior_heads_loss(heads, hidden, targets, items)
    heads.config = HeadsConfig(prior="taxonomy", frequency_weights=False)
    torch.manual_seed(1)
    equal = prior_heads_loss(heads, hidden, targets, items)
    # two positions train head a and one trains b: the weighted mean counts a twice as much
    assert not torch.isclose(weighted, equal)


def test_a_run_with_taxonomy_heads_fits_evaluates_and_reloads(make_dataset, tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        start = rng.integers(12)
        rows += [(f"u{user}", f"i{(start + t) % 12}", 1_600_000_000 + 60 * t) for t in range(8)]
    dataset = with_categories(make_dataset(rows), [["even" if i % 2 == 0 else "odd"] for i in range(12)])
    config = RunConfig.from_dict(
        {
            "model": {"dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 8},
            "heads": {"prior": "taxonomy", "negatives": 8},
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "threads": 1},
            "eval": {"ks": [1, 10]},
        }
    )
    fitted = Recommender(config).fit(dataset, out=tmp_path)
    assert sorted(fitted.model.heads.names) == ["even", "odd"]  # most frequent target category first
    loaded = Recommender.load(tmp_path)
    assert loaded.evaluate("test") == fitted.metrics["test"]
    assert loaded.model.heads.names == fitted.model.heads.names
    assert loaded.recommend(["u1"], k=3).height == 3  # batch recommendation ranks with the heads
    with pytest.raises(IntentRecError, match="prior heads, which the server cannot serve yet"):
        Service(loaded)
