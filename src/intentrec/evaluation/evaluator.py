"""Full-ranking evaluation: every user is scored against the whole catalogue, never a sample.

For each chunk of evaluation users: score all items, remove the items of their history (on by default,
``filter_seen``), take the top ``max(ks)``, mark hits against the targets and add the per-user metrics to a
running mean. Memory stays flat as users grow. Metric definitions: :mod:`intentrec.evaluation.metrics`.
"""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from intentrec.data.split import EvalSet
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


def evaluate(score: ScoreFn, eval_set: EvalSet, max_len: int, config: EvalConfig) -> dict[str, float]:
    """Mean metrics over the users of ``eval_set`` (keys like ``"ndcg@10"``), by full ranking."""
    accumulator = MetricAccumulator()
    k_max = max(config.ks)
    for rows, top_items, top_scores in ranked_chunks(
        score, eval_set.history, k_max, max_len, config.filter_seen, config.chunk_size
    ):
        targets = padded_targets(eval_set.targets, rows)
        # (B, k) with k = min(k_max, n_items); a seen item left in a short list (score -inf) is no hit
        hits = hit_matrix(top_items, targets) & (top_scores > float("-inf"))
        # a catalogue smaller than K_max: the ranks past its end hold nothing
        hits = torch.cat([hits, hits.new_zeros(len(rows), k_max - hits.shape[1])], dim=1)
        accumulator.add(ranking_metrics(hits, count_targets(targets), config.ks))
    return accumulator.means()
