"""Prior heads: their scoring and steering, their losses, composition, and a run end to end."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest
import torch
from fastapi.testclient import TestClient

from intentrec.config import RunConfig
from intentrec.data.sequences import Sequences
from intentrec.errors import IntentRecError
from intentrec.models.head_losses import merged_softmax_loss, prior_heads_loss
from intentrec.models.heads import HeadsConfig, PriorHeads, Steering
from intentrec.models.model import SequentialModel
from intentrec.models.priors import Prior
from intentrec.models.sasrec import SASRec, SASRecConfig
from intentrec.recommender import Recommender
from intentrec.serving.app import create_app
from intentrec.serving.index import IndexConfig
from intentrec.serving.schemas import RecommendRequest
from intentrec.serving.service import ServeConfig, Service

DIM = 8
PAD_ITEM = 0


def taxonomy(names: list[str], membership: list[list[bool]]) -> Prior:
    return Prior("taxonomy", names, membership=torch.tensor(membership))


def heads_for(names: list[str], membership: list[list[bool]], **config) -> PriorHeads:
    torch.manual_seed(0)
    config = HeadsConfig(priors=["taxonomy"], **config)
    heads = PriorHeads(DIM, len(membership), [taxonomy(names, membership)], config)
    with torch.no_grad():
        heads.weight.normal_(0, 0.5)
    return heads


@pytest.mark.parametrize("cosine", [False, True])
def test_heads_start_as_the_identity(cosine: bool) -> None:
    config = HeadsConfig(priors=["taxonomy"], cosine=cosine)
    heads = PriorHeads(DIM, 3, [taxonomy(["a", "b"], [[True, True]] * 3)], config)
    hidden = torch.randn(4, DIM)
    queries = heads(hidden)
    assert queries.shape == (4, 2, DIM)
    expected = torch.nn.functional.normalize(hidden, dim=-1) if cosine else hidden
    torch.testing.assert_close(queries, expected[:, None].expand(-1, 2, -1))
    torch.testing.assert_close(heads.query(hidden, 1), expected)
    assert heads.parameter_count() == 2 * (DIM * DIM + DIM) + (1 if cosine else 0)  # + the temperature


@pytest.mark.parametrize("cosine", [False, True])
def test_an_item_scores_by_its_best_allowed_head_and_weights_steer(cosine: bool) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, True], [False, True]], cosine=cosine, merge="max")
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


# the second: head a may give every item (scored whole, not as a group of rows)
@pytest.mark.parametrize(
    "membership", [[[True, False], [True, True], [False, True]], [[True, False], [True, True], [True, True]]]
)
def test_the_mix_merge_is_a_mixture_of_the_heads_weighted_by_the_backbones_own_probabilities(
    membership: list[list[bool]],
) -> None:
    heads = heads_for(["a", "b"], membership)
    hidden, items, own = torch.randn(2, DIM), torch.randn(4, DIM), torch.randn(2, 3)
    weights = torch.tensor([1.0, 3.0])
    scores, head = heads.score(hidden, items, weights, merge="mix", own_scores=own)
    own_probs, allowed = own.softmax(dim=1), torch.tensor(membership)
    expected = torch.zeros(2, 3)
    for c in range(2):
        head_probs = (heads(hidden)[:, c] @ items[1:].T).masked_fill(~allowed[:, c], float("-inf")).softmax(1)
        expected += weights[c] * (own_probs * allowed[:, c]).sum(1, keepdim=True) * head_probs
    torch.testing.assert_close(scores, expected.log())
    assert head[:, 0].tolist() == [0, 0]  # its only head
    with pytest.raises(ValueError, match="own next-item scores"):
        heads.score(hidden, items, merge="mix")


@pytest.mark.parametrize("cosine", [False, True])
def test_the_sum_merge_adds_up_the_weighted_heads_that_may_give_an_item(cosine: bool) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, True], [False, True]], cosine=cosine)
    hidden, items, weights = torch.randn(2, DIM), torch.randn(4, DIM), torch.tensor([2.0, 0.5])
    scores, head = heads.score(hidden, items, weights, merge="sum")
    unit = torch.nn.functional.normalize(items[1:], dim=-1) if cosine else items[1:]
    per_head = (heads.scale() * heads(hidden) @ unit.T).exp() * weights[None, :, None]  # (B, H, n)
    torch.testing.assert_close(scores[:, 0], per_head[:, 0, 0].log())
    torch.testing.assert_close(scores[:, 1], per_head[:, :, 1].sum(1).log())
    torch.testing.assert_close(scores[:, 2], per_head[:, 1, 2].log())
    assert (head[:, 1] == per_head[:, :, 1].argmax(1)).all()  # the larger term is the reason


@pytest.mark.parametrize("merge", ["max", "sum", "mix"])
def test_the_backbone_head_mixes_the_backbones_distribution_into_the_heads_list(merge: str) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, True], [False, True]])
    hidden, items, own = torch.randn(2, DIM), torch.randn(4, DIM), torch.randn(2, 3)
    weights = torch.tensor([1.0, 3.0])
    alone, _ = heads.score(hidden, items, weights, merge=merge, own_scores=own)
    scores, head = heads.score(hidden, items, weights, merge=merge, own_scores=own, backbone_weight=2.0)
    heads_probs, own_probs = alone.softmax(dim=1), own.softmax(dim=1)
    torch.testing.assert_close(scores, (heads_probs + 2.0 * own_probs).log())
    backbone_wins = 2.0 * own_probs > heads_probs
    assert backbone_wins.any() and not backbone_wins.all()  # both kinds of reason occur in this case
    assert (head == 2)[backbone_wins].all() and (head < 2)[~backbone_wins].all()  # head 2: "next"
    heavy, _ = heads.score(hidden, items, weights, merge=merge, own_scores=own, backbone_weight=1e6)
    assert torch.equal(heavy.argsort(dim=1), own.argsort(dim=1))  # weighed heavily: the backbone's list
    only, head = heads.score(hidden, items, torch.zeros(2), merge=merge, own_scores=own, backbone_weight=1.0)
    torch.testing.assert_close(only, own.log_softmax(dim=1))
    assert (head == 2).all()
    with pytest.raises(ValueError, match="own next-item scores"):
        heads.score(hidden, items, merge=merge, backbone_weight=1.0)


def test_the_backbone_head_is_steered_by_its_name() -> None:
    heads = heads_for(["a", "b"], [[True, False], [False, True]], backbone_weight=0.5)
    assert heads.backbone_weight(Steering()) == 0.5  # the run's
    assert heads.backbone_weight(Steering(heads={"next": 2.0})) == 2.0
    assert heads.backbone_weight(Steering(only=["a"])) == 0.0
    assert heads.backbone_weight(Steering(only=["next"])) == 0.5
    assert heads.head_weights(Steering(only=["next"])).tolist() == [0.0, 0.0]
    assert heads_for(["a"], [[True]]).backbone_weight(Steering(only=["next", "a"])) == 1.0


def test_the_mix_merge_reads_the_backbones_probabilities_at_its_training_temperature() -> None:
    """Identity cosine heads at the loss's temperature over disjoint categories: the mixture is the
    backbone's own distribution, which needs P(c | u) at that temperature (not at 1)."""
    temperature, n_items = 0.05, 6
    torch.manual_seed(0)
    backbone = SASRec(SASRecConfig(dim=DIM, n_blocks=1, max_len=5))
    membership = [[i < 3, i >= 3] for i in range(n_items)]
    config = HeadsConfig(priors=["taxonomy"], cosine=True, merge="mix")
    heads = PriorHeads(DIM, n_items, [taxonomy(["low", "high"], membership)], config)
    with torch.no_grad():
        heads.log_scale.fill_(np.log(1 / temperature))
    model = SequentialModel(backbone, n_items, normalize=True, heads=heads, temperature=temperature).eval()
    items, timestamps = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.zeros(2, 3, dtype=torch.int64)
    scores, _ = model.score_last(items, timestamps)
    user = model(items, timestamps, last_only=True)
    own = (user @ model.output_embeddings()[1:].T / temperature).log_softmax(dim=1)
    torch.testing.assert_close(scores, own)


@pytest.mark.parametrize("cosine", [False, True])
def test_the_merged_loss_is_cross_entropy_of_what_the_sum_merge_ranks_by(cosine: bool) -> None:
    membership = [[True, False], [True, True], [False, True], [False, True]]
    heads = heads_for(["a", "b"], membership, cosine=cosine, merged_loss=0.5)
    items, hidden, targets = torch.randn(5, DIM), torch.randn(3, DIM), torch.tensor([1, 2, 4])
    loss = merged_softmax_loss(heads, heads(hidden), targets, heads.items(items))
    scores, _ = heads.score(hidden, items, merge="sum")
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(scores, targets - 1))

    together = prior_heads_loss(heads, hidden, targets[:, None], items)
    heads.config = heads.config.model_copy(update={"merged_loss": 0.0})
    alone = prior_heads_loss(heads, hidden, targets[:, None], items)
    torch.testing.assert_close(together, alone + 0.5 * loss)


def test_a_head_no_item_belongs_to_changes_no_loss() -> None:
    items, hidden, targets = torch.randn(4, DIM), torch.randn(3, DIM), torch.tensor([[1], [2], [3]])
    with_empty = heads_for(["a", "(other)"], [[True, False]] * 3)
    alone = heads_for(["a"], [[True]] * 3)
    with torch.no_grad():
        alone.weight.copy_(with_empty.weight[:1])
    loss = prior_heads_loss(with_empty, hidden, targets, items)
    torch.testing.assert_close(loss, prior_heads_loss(alone, hidden, targets, items))
    loss.backward()
    assert torch.isfinite(with_empty.weight.grad).all()


@pytest.mark.parametrize(("objective", "cosine"), [("softmax", False), ("sampled", True)])
def test_a_head_learns_only_from_targets_of_its_value(objective: str, cosine: bool) -> None:
    heads = heads_for(
        ["a", "b"],
        [[True, False], [True, False], [False, True]],
        objective=objective,
        cosine=cosine,
        merged_loss=0,  # it would train every head on every target
    )
    items = torch.randn(4, DIM)
    hidden = torch.randn(3, DIM)
    prior_heads_loss(heads, hidden, torch.tensor([[1], [2], [1]]), items).backward()  # items 0, 1, 0
    assert heads.weight.grad[0].abs().sum() > 0
    assert heads.weight.grad[1].abs().sum() == 0  # no target in b
    if cosine:
        assert torch.isfinite(heads.log_scale.grad)


def test_the_learned_temperature_comes_back_from_its_cap() -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, False], [False, True]], cosine=True)
    with torch.no_grad():
        heads.log_scale.fill_(np.log(150.0))  # pushed past the cap by a step
    assert heads.scale().item() == pytest.approx(100.0)
    heads.scale().backward()  # a gradient flows: a clamp of the output gave 0 above the cap, for good
    assert heads.log_scale.grad is not None and float(heads.log_scale.grad) == pytest.approx(100.0)


def test_the_softmax_objective_is_cross_entropy_within_the_heads_group() -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, False], [False, True]], merged_loss=0)
    items, hidden = torch.randn(4, DIM), torch.randn(1, DIM)
    loss = prior_heads_loss(heads, hidden, torch.tensor([[2]]), items)  # target item 1, group a = {0, 1}
    logits = heads.query(hidden, 0) @ items[1:3].T  # the candidates: items 0 and 1 only
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(logits, torch.tensor([1])))

    apart = heads_for(["a", "b"], [[True, False], [False, True], [True, False]], merged_loss=0)
    loss = prior_heads_loss(apart, hidden, torch.tensor([[3]]), items)  # target item 2, group a = {0, 2}
    logits = apart.query(hidden, 0) @ items[[1, 3]].T
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
    prior_heads_loss(heads, torch.randn(2, DIM), torch.tensor([[1], [3]]), torch.randn(5, DIM))
    pools = [heads.allowed[:, head].nonzero().squeeze(1) for head in range(2)]
    assert [set(pool[draw].tolist()) <= set(pool.tolist()) for pool, draw in zip(pools, drawn, strict=True)]
    assert {1, 2} >= set(pools[0][drawn[0]].tolist()) and {3, 4} >= set(pools[1][drawn[1]].tolist())


def test_frequency_weights_average_over_position_head_pairs(monkeypatch) -> None:
    heads = heads_for(["a", "b"], [[True, False], [True, False], [False, True], [False, True]])
    items, hidden, targets = torch.randn(5, DIM), torch.randn(3, DIM), torch.tensor([[1], [1], [3]])
    torch.manual_seed(1)
    weighted = prior_heads_loss(heads, hidden, targets, items)
    heads.config = HeadsConfig(priors=["taxonomy"], frequency_weights=False)
    torch.manual_seed(1)
    equal = prior_heads_loss(heads, hidden, targets, items)
    # two positions train head a and one trains b: the weighted mean counts a twice as much
    assert not torch.isclose(weighted, equal)


# --- composition -------------------------------------------------------------------------------------------


def two_priors() -> list[Prior]:
    return [taxonomy(["a", "b"], [[True, False], [False, True], [True, True]]), Prior.horizon(4, 2)]


@pytest.mark.parametrize(
    ("composition", "names", "parameters"),
    [
        ("additive", ["a", "b", "next 1-2", "next 3-4"], 4 * (DIM * DIM + DIM)),
        (
            "multiplicative",
            ["a · next 1-2", "a · next 3-4", "b · next 1-2", "b · next 3-4"],
            4 * (DIM**2 + DIM),
        ),
        # a block per category, one shared segment block on top, an embedding per segment
        (
            "hierarchical",
            ["a · next 1-2", "a · next 3-4", "b · next 1-2", "b · next 3-4"],
            3 * (DIM**2 + DIM) + 2 * DIM,
        ),
    ],
)
def test_two_priors_compose_into_heads(composition: str, names: list[str], parameters: int) -> None:
    torch.manual_seed(0)
    config = HeadsConfig(priors=["taxonomy", "horizon"], composition=composition, pred_len=4)
    heads = PriorHeads(DIM, 3, two_priors(), config)
    assert heads.names == names
    assert heads.parameter_count() == parameters
    with torch.no_grad():
        for parameter in heads.parameters():
            parameter.normal_(0, 0.5)
    hidden = torch.randn(5, DIM)
    queries = heads(hidden)
    for head in range(len(names)):  # the batched queries are each head's own
        torch.testing.assert_close(queries[:, head], heads.query(hidden, head))
    if composition == "hierarchical":  # heads of one category differ only by the segment embedding
        assert not torch.allclose(queries[:, 0], queries[:, 1])

    # item 1 is in b, item 2 in a and b; 1 ahead (segment 1) and 3 ahead (segment 2)
    trains = heads.trains(torch.tensor([[2, PAD_ITEM, 3, PAD_ITEM]]), None)[0]  # (K, H)
    trained = {(k, names[h]) for k, h in trains.nonzero().tolist()}
    if composition == "additive":
        assert trained == {(0, "b"), (0, "next 1-2"), (2, "a"), (2, "b"), (2, "next 3-4")}
    else:
        assert trained == {(0, "b · next 1-2"), (2, "a · next 3-4"), (2, "b · next 3-4")}
    # category heads may only give their category's items; segment-only heads any item
    assert heads.allowed[1:, names.index(names[0])].tolist() == ([True, False, True])


def test_later_horizon_targets_are_discounted() -> None:
    torch.manual_seed(0)
    config = HeadsConfig(priors=["horizon"], pred_len=2, segments=2, discount=0.5)
    heads = PriorHeads(DIM, 3, [Prior.horizon(2, 2)], config)
    items, hidden = torch.randn(4, DIM), torch.randn(2, DIM)
    targets = torch.tensor([[1, 2], [3, PAD_ITEM]])
    loss = prior_heads_loss(heads, hidden, targets, items)
    nll = -torch.log_softmax(hidden @ items[1:].T, dim=1)  # identity heads at initialisation
    near = (nll[0, 0] + nll[1, 2]) / 2  # head "next 1": both positions, weight 1
    far = nll[0, 1]  # head "next 2": one target, weight 0.5 (its only one, so its mean is itself)
    torch.testing.assert_close(loss, (2 * near + 0.5 * far) / 2.5)  # heads weighed by their target mass


def test_steering_weights_heads_by_name_value_or_subset() -> None:
    config = HeadsConfig(priors=["taxonomy", "horizon"], composition="multiplicative", pred_len=4)
    heads = PriorHeads(DIM, 3, two_priors(), config)
    weights = heads.head_weights(Steering(heads={"a · next 1-2": 3.0}, values={"a": 2.0, "next 3-4": 0.5}))
    assert weights.tolist() == [6.0, 1.0, 1.0, 0.5]
    assert heads.head_weights(Steering(only=["next 1-2"])).tolist() == [1.0, 0.0, 1.0, 0.0]
    with pytest.raises(IntentRecError, match=r"no head or prior value .nxt 1-2.*next 1-2"):
        heads.head_weights(Steering(only=["nxt 1-2"]))
    for weight in (-1.0, 1.1e9):  # a weight beyond 1e9 would overflow float32 once multiplied
        with pytest.raises(ValueError, match="from 0 to 1e"):
            Steering(values={"a": weight})
    with pytest.raises(ValueError, match="less than or equal to 1000000000"):
        Steering(unexplored=1e39)
    with pytest.raises(ValueError, match="finite number"):
        Steering(heads={"a": float("inf")})
    with pytest.raises(ValueError, match="at least 1 item"):
        Steering(only=[])
    with pytest.raises(IntentRecError, match="steering weighs every head 0"):
        heads.head_weights(Steering(values={"a": 0.0, "b": 0.0}))


@pytest.mark.parametrize("composition", ["additive", "multiplicative"])
def test_the_heads_of_categories_a_history_has_not_met_are_weighed_per_user(composition: str) -> None:
    config = HeadsConfig(priors=["taxonomy", "horizon"], composition=composition, pred_len=4)
    heads = PriorHeads(DIM, 3, two_priors(), config)  # items 1: a, 2: b, 3: a and b (model indices)
    histories = Sequences(  # dataset items 0; 0, 1; nothing (model items 1; 1, 2; nothing)
        users=np.arange(3), offsets=np.array([0, 1, 3, 3]), items=np.array([0, 0, 1]), timestamps=np.zeros(3)
    )
    names = heads.names
    new = heads.unexplored(histories)
    met_by_first = {name for name, unmet in zip(names, new[0].tolist(), strict=True) if not unmet}
    assert met_by_first == ({"a", "next 1-2", "next 3-4"} if composition == "additive" else set(names[:2]))
    assert not new[1].any()  # both categories met
    assert new[2].tolist() == [name.startswith(("a", "b")) for name in names]  # nothing met: every category
    weights = heads.head_weights(Steering(values={"next 1-2": 2.0}, unexplored=3.0), histories)
    base = heads.head_weights(Steering(values={"next 1-2": 2.0}))
    assert weights.shape == (3, len(names))
    torch.testing.assert_close(weights, base * torch.where(new, 3.0, 1.0))
    assert heads.head_weights(Steering(unexplored=1.0), histories).shape == (len(names),)  # no per-user work

    with torch.no_grad():  # per-user weights score each user as that user's own (H,) weights would
        heads.weight.normal_(0, 0.5)
    hidden, items = torch.randn(3, DIM), torch.randn(4, DIM)
    scores, head = heads.score(hidden, items, weights)
    for user in range(3):
        alone, alone_head = heads.score(hidden[user : user + 1], items, weights[user])
        torch.testing.assert_close(scores[user : user + 1], alone)
        assert torch.equal(head[user : user + 1], alone_head)
    # a user left no head at all ranks by the backbone's own distribution when it is weighed in
    own = torch.randn(3, 3)
    none_for_first = torch.ones(3, len(names))
    none_for_first[0] = 0.0
    mixed, mixed_head = heads.score(hidden, items, none_for_first, "sum", own, backbone_weight=0.5)
    assert torch.isfinite(mixed).all()
    torch.testing.assert_close(mixed[0], torch.log_softmax(own[0], dim=0) + np.log(0.5))
    assert (mixed_head[0] == len(names)).all()  # the head "next"


def test_a_run_with_taxonomy_heads_fits_evaluates_and_reloads(make_dataset, tmp_path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for user in range(60):
        start = rng.integers(12)
        rows += [(f"u{user}", f"i{(start + t) % 12}", 1_600_000_000 + 60 * t) for t in range(8)]
    categories = [["even" if i % 2 == 0 else "odd"] + (["third"] if i % 3 == 0 else []) for i in range(12)]
    dataset = make_dataset(rows, categories=categories)  # multi-label: items 0, 3, 6, 9 have two heads
    config = RunConfig.from_dict(
        {
            "model": {"dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 8},
            "heads": {"prior": "taxonomy", "negatives": 8},  # the key of runs saved before 'priors'
            "train": {"epochs": 3, "batch_size": 32, "lr": 0.01, "threads": 1},
            "eval": {"ks": [1, 10]},
        }
    )
    fitted = Recommender(config).fit(dataset, out=tmp_path)
    assert sorted(fitted.model.heads.names) == ["even", "odd", "third"]
    loaded = Recommender.load(tmp_path)
    assert loaded.evaluate("test") == fitted.metrics["test"]
    assert loaded.model.heads.names == fitted.model.heads.names
    assert loaded.recommend(["u1"], k=3).height == 3  # batch recommendation ranks with the heads
    with monkeypatch.context() as patched:  # lists that only "odd" filled: the others are there, at 0
        patched.setattr(loaded, "_rank", lambda *args: pl.DataFrame({"head": ["odd", "odd"]}))
        assert loaded.breakdown("test")["heads"] == {"odd": 1.0, "even": 0.0, "third": 0.0}

    # served over the exact index, each head searches its own items and the lists merge as offline
    service = Service(loaded, ServeConfig(index=IndexConfig(kind="exact")))
    for user in ["u1", "u7", "u30"]:
        for steering in (
            None,
            Steering(only=["odd"]),
            Steering(values={"even": 3.0}),
            Steering(merge="sum"),
            Steering(merge="sum", values={"third": 0.5}),
            Steering(merge="mix"),  # needs every item's score: the server scores the whole catalogue
            Steering(heads={"next": 1.0}, values={"odd": 2.0}),
            Steering(merge="mix", heads={"next": 0.5}, only=["even", "next"]),
        ):
            offline = loaded.recommend([user], k=5, steering=steering)
            served = service.recommend(RecommendRequest(user=user, k=5, steering=steering))
            assert [entry["item"] for entry in served["items"]] == offline["item"].to_list()
            assert [entry["head"] for entry in served["items"]] == offline["head"].to_list()
            np.testing.assert_allclose([e["score"] for e in served["items"]], offline["score"], rtol=1e-5)
    # the "sum" merge: an item two heads may give can sum above the k-th while in neither head's own top
    # k, so the server searches deeper until no item it missed could place; random queries for the heads
    # (scores within a few units, where two heads' sum matters), against the sum over the whole catalogue
    request = RecommendRequest(user="u1", k=1, exclude_seen=False, steering=Steering(merge="sum"))
    resolved, items = service.prepare(request), service.index.vectors
    generator = np.random.default_rng(0)
    for _ in range(100):
        queries = (generator.normal(size=(3, 16)) / np.linalg.norm(items, axis=1).mean()).astype(np.float32)
        terms = np.where(service._head_items, queries @ items.T, -np.inf)
        assert service.search(resolved, queries)[0].tolist() == [np.logaddexp.reduce(terms, axis=0).argmax()]
    assert [head.name for head in service.metadata().heads] == [*loaded.model.heads.names, "next"]
    # exact requests ranked together: those that steer alike share one scoring of the catalogue, and each
    # ranks as it does alone (other users, a brought history, other k, a filter, seen items kept)
    mix, blend = Steering(merge="mix"), Steering(heads={"next": 1.0}, values={"odd": 2.0})
    batch = [
        RecommendRequest(user="u1", k=5, steering=mix),
        RecommendRequest(user="u7", k=3, steering=blend),
        RecommendRequest(history=[{"item": "i3"}, {"item": "i4"}], k=6, steering=mix),
        RecommendRequest(user="u30", k=5, steering=mix, exclude_seen=False, include_categories=["odd"]),
        RecommendRequest(user="u1", k=5),  # searched in the index
    ]
    resolved = [service.prepare(request) for request in batch]
    scorings = []
    score_states = loaded.model.score_states

    def counted(states, *args):
        scorings.append(len(states))
        return score_states(states, *args)

    monkeypatch.setattr(loaded.model, "score_states", counted)
    together = service.rank(resolved)
    assert sorted(scorings) == [1, 3]  # the three "mix" requests in one pass, the blend in another
    for each, (items, scores, heads) in zip(resolved, together, strict=True):
        alone_items, alone_scores, alone_heads = service.rank([each])[0]
        assert items.tolist() == alone_items.tolist() and list(heads) == list(alone_heads)
        np.testing.assert_allclose(scores, alone_scores, rtol=1e-5)
    monkeypatch.undo()
    # over HTTP: a known user's cached state, and a history brought in the request (the batched model)
    steering = Steering(heads={"next": 2.0})
    offline_user = loaded.recommend(["u1"], k=4, steering=steering)
    offline_history = loaded.recommend_history(["i3", "i4", "i5"], k=4, steering=steering)
    assert "next" in offline_history["head"].to_list()  # so the backbone's head is reported by its name
    body = {"k": 4, "steering": {"heads": {"next": 2.0}}}
    with TestClient(create_app(service)) as client:
        for request, offline in (
            ({"user": "u1", **body}, offline_user),
            ({"history": [{"item": item} for item in ["i3", "i4", "i5"]], **body}, offline_history),
        ):
            response = client.post("/recommend", json=request)
            assert response.status_code == 200, response.text
            entries = response.json()["items"]
            assert [entry["item"] for entry in entries] == offline["item"].to_list()
            assert [entry["head"] for entry in entries] == offline["head"].to_list()
    # a history that met only "odd": the "even" and "third" heads weigh 5 for it, served as offline
    lean, history = Steering(unexplored=5.0), [{"item": "i1"}]
    for steering in (lean, lean.model_copy(update={"merge": "sum"})):
        offline = loaded.recommend_history(["i1"], k=4, steering=steering)
        served = service.recommend(RecommendRequest(history=history, k=4, steering=steering))
        assert [entry["item"] for entry in served["items"]] == offline["item"].to_list()
        assert [entry["head"] for entry in served["items"]] == offline["head"].to_list()
    by_values = loaded.recommend_history(["i1"], k=4, steering=Steering(values={"even": 5.0, "third": 5.0}))
    assert loaded.recommend_history(["i1"], k=4, steering=lean).equals(by_values)
    # the fields as a dict, as the HTTP API takes them
    as_dict = loaded.recommend_history(["i1"], k=4, steering={"values": {"even": 5.0, "third": 5.0}})
    assert as_dict.equals(by_values)
    with pytest.raises(IntentRecError, match=r"steering: invalid configuration\n  values\.even: "):
        loaded.recommend(["u1"], k=4, steering={"values": {"even": "much"}})
    with pytest.raises(TypeError, match="steering: expected a Steering or a dict of its fields, not str"):
        loaded.evaluate("test", steering="sum")
    # "met" is read over the whole history: i0 ("even", "third") lies before the 8 events the model reads
    long = ["i0", *["i1", "i5", "i7", "i11"] * 2]
    assert loaded.recommend_history(long, k=4, steering=lean).equals(loaded.recommend_history(long, k=4))
    served = service.recommend(RecommendRequest(history=[{"item": i} for i in long], k=4, steering=lean))
    assert [entry["item"] for entry in served["items"]] == loaded.recommend_history(long, k=4)[
        "item"
    ].to_list()
    assert not loaded.recommend_history(long[1:], k=4, steering=lean).equals(
        loaded.recommend_history(long[1:], k=4)
    )
    small = Service(loaded, ServeConfig(index=IndexConfig(kind="exact"), exact_max_items=11))
    with pytest.raises(IntentRecError, match=r"12 items, over the server's exact_max_items \(11\)"):
        small.prepare(RecommendRequest(user="u1", steering=Steering(merge="mix")))
    small.prepare(RecommendRequest(user="u1", steering=Steering(merge="sum")))  # searched: no limit
    with pytest.raises(IntentRecError, match="no head or prior value 'evn'"):
        service.prepare(RecommendRequest(user="u1", steering=Steering(heads={"evn": 2.0})))
    # offline, the backbone weighed heavily gives the backbone's own list, each item by head "next"
    backbone = loaded.recommend(["u1", "u7"], k=5, steering=Steering(heads={"next": 1e6}))
    assert backbone["head"].unique().to_list() == ["next"]
    loaded.model.heads = None
    assert backbone["item"].equals(loaded.recommend(["u1", "u7"], k=5)["item"])


def test_composed_heads_fit_reload_recommend_and_steer(make_dataset, tmp_path) -> None:
    rng = np.random.default_rng(0)
    rows = []
    for user in range(40):
        start = rng.integers(12)
        rows += [
            (f"u{user}", f"i{(start + t) % 12}", 1_600_000_000 + 60 * t, "buy" if t % 3 == 0 else "view")
            for t in range(10)
        ]
    dataset = make_dataset(rows, categories=[["even" if i % 2 == 0 else "odd"] for i in range(12)])
    config = RunConfig.from_dict(
        {
            "model": {"dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 6},
            "heads": {"priors": ["events", "horizon"], "pred_len": 4},
            "train": {"epochs": 2, "batch_size": 32, "lr": 0.01, "threads": 1},
            "eval": {"ks": [1, 10]},
        }
    )
    fitted = Recommender(config).fit(dataset, out=tmp_path)
    assert fitted.model.heads.names == [
        "view · next 1-2",
        "view · next 3-4",
        "buy · next 1-2",
        "buy · next 3-4",
    ]
    loaded = Recommender.load(tmp_path)
    assert loaded.evaluate("test") == fitted.metrics["test"]
    table = loaded.recommend(["u1", "u2"], k=5)
    assert set(table["head"]) <= set(fitted.model.heads.names)
    short_term = loaded.recommend(["u1", "u2"], k=5, steering=Steering(only=["next 1-2"]))
    assert set(short_term["head"]) <= {"view · next 1-2", "buy · next 1-2"}
    service = Service(loaded, ServeConfig(index=IndexConfig(kind="exact")))  # heads that may give any item
    served = service.recommend(RecommendRequest(user="u1", k=5, steering=Steering(only=["next 1-2"])))
    assert [entry["item"] for entry in served["items"]] == short_term.filter(pl.col("user") == "u1")[
        "item"
    ].to_list()
    assert any(head.startswith("view") for head in table["head"])
    without_view = loaded.recommend(["u1", "u2"], k=5, steering=Steering(values={"view": 0.0}))
    assert set(without_view["head"]) <= {"buy · next 1-2", "buy · next 3-4"}
    steered = loaded.evaluate("test", steering=Steering(values={"view": 0.0}))
    assert steered.keys() == fitted.metrics["test"].keys()
    shares = fitted.metrics["test_heads"]  # which head filled the test users' top 10
    assert set(shares) == set(fitted.model.heads.names) and sum(shares.values()) == pytest.approx(1.0)
    assert list(shares.values()) == sorted(shares.values(), reverse=True)  # the heads that filled most first
    assert set(fitted.metrics["test_by_category"]) == {"even", "odd"}


def test_heads_of_item_priors_train_and_merge_on_a_common_scale_by_default() -> None:
    """In-group losses never compare items of different heads; the merged loss and the backbone's own
    next-item loss do, and the sum merge ranks by what the merged loss trained."""
    taxonomy = HeadsConfig(priors=["taxonomy"])
    assert (taxonomy.next_item_weight, taxonomy.merged_weight, taxonomy.merge_rule) == (1.0, 1.0, "sum")
    assert HeadsConfig(priors=["clusters", "horizon"]).merged_weight == 1.0
    horizon = HeadsConfig(priors=["horizon"])  # every head already ranks every item
    assert (horizon.next_item_weight, horizon.merged_weight, horizon.merge_rule) == (0.0, 0.0, "max")
    global_negatives = HeadsConfig(priors=["taxonomy"], in_group_negatives=False)
    assert (global_negatives.next_item_weight, global_negatives.merged_weight) == (0.0, 0.0)
    assert HeadsConfig(priors=["horizon"], next_item_loss=0.5).next_item_weight == 0.5
    assert HeadsConfig(priors=["taxonomy"], merged_loss=0).merge_rule == "max"
    assert HeadsConfig(priors=["taxonomy"], merge="max").merge_rule == "max"
