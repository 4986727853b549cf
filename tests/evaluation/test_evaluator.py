"""The evaluator against a slow reference: one user at a time, unpadded, numpy argsort, metric formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from intentrec.data.sequences import Sequences
from intentrec.data.split import EvalSet, split_dataset
from intentrec.evaluation.evaluator import CPU_CHUNK_EVENTS, EvalConfig, evaluate
from intentrec.models.model import SequentialModel
from intentrec.models.sasrec import SASRec, SASRecConfig

MAX_LEN = 5


def random_rows(n_users: int = 30, n_items: int = 40, seed: int = 0) -> list[tuple[int, int, int]]:
    """Random histories of 3..15 events; items repeat, so some targets are already in their history."""
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        length = rng.integers(3, 16)
        rows += [(user, int(rng.integers(n_items)), t) for t in range(length)]
    return rows


@pytest.fixture(scope="module")
def split(make_dataset):
    return split_dataset(make_dataset(random_rows()))


@pytest.fixture(scope="module")
def model(split) -> SequentialModel:
    torch.manual_seed(0)
    n_items = 1 + int(max(s.items.max() for s in (split.train, split.test.history, split.test.targets)))
    return SequentialModel(SASRec(SASRecConfig(dim=8, n_blocks=1, max_len=MAX_LEN)), n_items).eval()


def scorer(model: SequentialModel):
    def score(batch, histories):
        return model.score_last(torch.from_numpy(batch.items), torch.from_numpy(batch.timestamps))[0]

    return score


def reference(model: SequentialModel, eval_set: EvalSet, ks: list[int], filter_seen: bool) -> dict:
    """Mean metrics, user by user, from the definitions in intentrec.evaluation.metrics."""
    values: dict[str, list[float]] = {f"{m}@{k}": [] for m in ("hr", "recall", "ndcg", "mrr") for k in ks}
    for r in range(len(eval_set)):
        history = eval_set.history.row(r)
        start, end = eval_set.history.offsets[r], eval_set.history.offsets[r + 1]
        read = slice(max(start, end - MAX_LEN), end)  # the last MAX_LEN events, no padding at all
        items = torch.from_numpy(eval_set.history.items[read].astype(np.int64) + 1)[None]  # (1, L)
        timestamps = torch.from_numpy(eval_set.history.timestamps[read])[None]  # (1, L)
        with torch.no_grad():
            scores = model.score_last(items, timestamps)[0][0].numpy().astype(np.float64)
        if filter_seen:
            scores[history] = -np.inf
        order = np.argsort(-scores, kind="stable")
        targets = set(eval_set.targets.row(r).tolist())
        for k in ks:
            ranks = [rank for rank, item in enumerate(order[:k], 1) if item in targets]
            assert all(np.isfinite(scores[order[rank - 1]]) for rank in ranks)
            ideal = sum(1 / math.log2(rank + 1) for rank in range(1, min(len(targets), k) + 1))
            values[f"hr@{k}"].append(float(bool(ranks)))
            values[f"recall@{k}"].append(len(ranks) / len(targets))
            values[f"ndcg@{k}"].append(sum(1 / math.log2(rank + 1) for rank in ranks) / ideal)
            values[f"mrr@{k}"].append(1 / ranks[0] if ranks else 0.0)
    return {name: sum(v) / len(v) for name, v in values.items()}


@pytest.mark.parametrize("filter_seen", [True, False])
@pytest.mark.parametrize("on", ["valid", "test"])
def test_matches_the_slow_reference(split, model, filter_seen: bool, on: str) -> None:
    eval_set = split.valid if on == "valid" else split.test
    ks = [1, 3, 10]
    config = EvalConfig(ks=ks, filter_seen=filter_seen, chunk_size=7)
    metrics = evaluate(scorer(model), eval_set, MAX_LEN, config)
    expected = reference(model, eval_set, ks, filter_seen)
    assert list(metrics) == [f"{m}@{k}" for m in ("hr", "recall", "ndcg", "mrr") for k in ks]
    assert metrics == pytest.approx(expected, abs=1e-9)
    assert 0 < metrics["hr@10"] < 1  # a random model: neither trivially empty nor trivially perfect


def test_some_targets_are_seen_items_so_filtering_matters(split, model) -> None:
    seen = [
        bool(set(split.test.targets.row(r)) & set(split.test.history.row(r))) for r in range(len(split.test))
    ]
    assert any(seen)
    ks = [40]  # the whole catalogue: every unfiltered target is found
    kept = evaluate(scorer(model), split.test, MAX_LEN, EvalConfig(ks=ks, filter_seen=False))
    filtered = evaluate(scorer(model), split.test, MAX_LEN, EvalConfig(ks=ks, filter_seen=True))
    assert kept["hr@40"] == 1.0
    assert filtered["hr@40"] == pytest.approx(1 - np.mean(seen), abs=1e-9)


@pytest.mark.parametrize(
    ("chunk_size", "chunk_events"), [(1, 8192), (2, 8192), (5, 8192), (1024, 1), (1024, 20)]
)
def test_chunk_size_does_not_change_the_metrics(split, model, chunk_size: int, chunk_events: int) -> None:
    def run(size: int, events: int) -> dict[str, float]:
        config = EvalConfig(ks=[1, 5, 10], chunk_size=size, chunk_events=events)
        return evaluate(scorer(model), split.test, MAX_LEN, config)

    assert run(chunk_size, chunk_events) == run(3, 10**6)


def test_chunk_events_default_to_small_chunks_on_a_cpu_and_none_on_a_gpu() -> None:
    config = EvalConfig()
    assert config.for_device(torch.device("cpu")).chunk_events == CPU_CHUNK_EVENTS
    assert config.for_device(torch.device("cuda")).chunk_events is None  # a device object needs no GPU
    assert EvalConfig(chunk_events=50).for_device(torch.device("cuda")).chunk_events == 50


def eval_set(*users: tuple[list[int], list[int]]) -> EvalSet:
    """Users given as ``(history, targets)`` item lists."""

    def sequences(rows: list[list[int]]) -> Sequences:
        return Sequences(
            users=np.arange(len(rows), dtype=np.int32),
            offsets=np.cumsum([0, *map(len, rows)]),
            items=np.array([item for row in rows for item in row], dtype=np.int32),
            timestamps=np.concatenate([np.arange(len(row), dtype=np.int64) for row in rows]),
        )

    return EvalSet(
        history=sequences([user[0] for user in users]), targets=sequences([user[1] for user in users])
    )


def one_user(history: list[int], targets: list[int]) -> EvalSet:
    return eval_set((history, targets))


def test_ties_count_against_the_targets_in_every_chunk() -> None:
    # a model that scores every item alike knows nothing: its targets rank last, whether a chunk holds
    # users with one target or several (a top list picked among the ties in its own order, per chunk)
    def alike(batch, histories):
        return torch.zeros(len(histories), 8)

    users = [([0, 1], [2, 3]), ([4], [5]), ([6, 7], [0, 1]), ([2], [3])]
    for chunk_size in (1, 2, 4):
        metrics = evaluate(alike, eval_set(*users), 3, EvalConfig(ks=[1, 5], chunk_size=chunk_size))
        # the targets take the last ranks of the items left: 5 and 6 of 6 for two targets, 7 of 7 for one
        assert metrics["hr@1"] == 0.0
        assert (metrics["hr@5"], metrics["recall@5"]) == (0.5, 0.25)
        assert metrics == evaluate(alike, eval_set(*users), 3, EvalConfig(ks=[1, 5], chunk_size=1))


def test_catalogue_smaller_than_k_and_seen_targets_are_never_hits() -> None:
    # 4 items, 3 of them seen; the target is a seen item (a repeat): with filter_seen it cannot be hit, even
    # though the top-10 list of a 4-item catalogue has to be padded with seen items and empty ranks.
    def score(batch, histories):
        return torch.tensor([[4.0, 3.0, 2.0, 1.0]])

    eval_set = one_user(history=[0, 1, 2], targets=[0])
    filtered = evaluate(score, eval_set, 3, EvalConfig(ks=[1, 4, 10]))
    assert all(value == 0.0 for value in filtered.values())
    kept = evaluate(score, eval_set, 3, EvalConfig(ks=[1, 4, 10], filter_seen=False))
    assert kept["hr@1"] == kept["hr@10"] == kept["ndcg@10"] == 1.0
    unseen = evaluate(score, one_user([0, 1, 2], [3]), 3, EvalConfig(ks=[1, 4, 10]))
    assert unseen["hr@1"] == unseen["hr@10"] == 1.0  # the one item left is ranked first


def test_eval_config_sorts_ks_and_rejects_bad_ones() -> None:
    assert EvalConfig(ks=[10, 1, 5]).ks == [1, 5, 10]
    for ks in ([], [0, 5], [5, 5]):
        with pytest.raises(ValidationError, match="ks"):
            EvalConfig(ks=ks)
    with pytest.raises(ValidationError, match="chunk_size"):
        EvalConfig(chunk_size=0)
