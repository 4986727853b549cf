"""Full-ranking evaluation: every user is scored against the whole catalogue, never a sample.

For each chunk of evaluation users: score all items, remove the items of their history (on by default,
``filter_seen``), take the top ``max(ks)``, mark hits against the targets and add the per-user metrics to a
running mean. Memory stays flat as users grow. Metric definitions: :mod:`intentrec.evaluation.metrics`,
and :mod:`intentrec.evaluation.beyond_accuracy` for diversity, novelty, coverage, personalisation and
exploration, measured on the same lists whenever the item features are given.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from intentrec.data.split import EvalSet
from intentrec.evaluation.beyond_accuracy import BeyondAccuracy, CategoryBreakdown, ItemFeatures
from intentrec.evaluation.metrics import (
    MetricAccumulator,
    count_targets,
    hit_matrix,
    metric_names,
    ranking_metrics,
)
from intentrec.ranking import ScoreFn, padded_targets, ranked_chunks


class EvalConfig(BaseModel):
    """What is measured and how."""

    model_config = ConfigDict(extra="forbid")

    ks: list[int] = Field([1, 5, 10, 20, 50], description="Cut-offs K for HR, Recall, NDCG and MRR.")
    filter_seen: bool = Field(True, description="Never count items from the user's history as recommended.")
    chunk_size: int = Field(1024, ge=1, description="Users scored at once (memory ~ chunk_size * n_items).")

    @field_validator("ks")
    @classmethod
    def _valid_ks(cls, ks: list[int]) -> list[int]:
        metric_names(ks)  # raises a clear error for empty or non-positive cut-offs
        if len(set(ks)) < len(ks):
            raise ValueError(f"ks must not repeat a cut-off, got {ks}.")
        return sorted(ks)


def evaluate(
    score: ScoreFn,
    eval_set: EvalSet,
    max_len: int,
    config: EvalConfig,
    features: ItemFeatures | None = None,
    by_category: CategoryBreakdown | None = None,
) -> dict[str, float]:
    """Mean metrics over the users of ``eval_set`` (keys like ``"ndcg@10"``), by full ranking.

    With ``features``, the beyond-accuracy metrics (``"entropy@10"``, ``"coverage@10"``, ...) follow the
    accuracy ones; ``by_category`` is fed the same lists (its results are read from it).
    """
    accumulator = MetricAccumulator()
    beyond = BeyondAccuracy(features, config.ks) if features is not None else None
    k_max = max(config.ks)
    for rows, top_items, top_scores in ranked_chunks(
        score, eval_set.history, k_max, max_len, config.filter_seen, config.chunk_size
    ):
        targets = padded_targets(eval_set.targets, rows)
        # (B, k) with k = min(k_max, n_items); a seen item left in a short list (score -inf) is no hit
        listed = top_scores > float("-inf")
        hits = hit_matrix(top_items, targets) & listed
        # a catalogue smaller than K_max: the ranks past its end hold nothing
        hits = torch.cat([hits, hits.new_zeros(len(rows), k_max - hits.shape[1])], dim=1)
        accuracy = ranking_metrics(hits, count_targets(targets), config.ks)
        accumulator.add(accuracy)
        if beyond is not None:
            beyond.add(top_items, listed, targets, eval_set.history.subset(rows), accuracy)
        if by_category is not None:
            by_category.add(targets, accuracy)
    return accumulator.means() | (beyond.means() if beyond is not None else {})
