"""Full-ranking evaluation: every user is scored against the whole catalogue, never a sample.

For each chunk of evaluation users: score all items, remove the items of their history (on by default,
``filter_seen``), mark where the targets rank (counting every item that scores at least as high, so a tie
counts against the target, whatever the chunks) and add the per-user metrics to a running mean. Memory
stays flat as users grow. Metric definitions: :mod:`intentrec.evaluation.metrics`, and
:mod:`intentrec.evaluation.beyond_accuracy` for diversity, novelty, coverage, personalisation and
exploration, measured on the top lists whenever the item features are given.
"""

from __future__ import annotations

import torch
from pydantic import Field, field_validator

from intentrec.data.split import EvalSet
from intentrec.evaluation.beyond_accuracy import BeyondAccuracy, CategoryBreakdown, ItemFeatures
from intentrec.evaluation.metrics import (
    MetricAccumulator,
    count_targets,
    metric_names,
    rank_hits,
    ranking_metrics,
)
from intentrec.ranking import ScoreFn, padded_targets, scored_chunks, top_k
from intentrec.settings import Settings

#: Padded events per ranking chunk on a CPU: HSTU's 200-event test pass on MovieLens-100K ran 3.6x faster
#: than with 1,024 users a chunk (BENCHMARKS.md).
CPU_CHUNK_EVENTS = 8192


class EvalConfig(Settings):
    """What is measured and how."""

    ks: list[int] = Field([1, 5, 10, 20, 50], description="Cut-offs K for HR, Recall, NDCG and MRR.")
    filter_seen: bool = Field(True, description="Never count items from the user's history as recommended.")
    chunk_size: int = Field(1024, ge=1, description="Users scored at once (memory ~ chunk_size * n_items).")
    chunk_events: int | None = Field(
        None,
        ge=1,
        description="At most this many padded events read by the model at once: users with long histories "
        "are scored in smaller chunks. None: 8192 on a CPU, where small chunks stay in cache; no limit on a "
        "GPU, which wants large batches (see for_device).",
    )

    def for_device(self, device: torch.device) -> EvalConfig:
        """These settings with ``chunk_events`` resolved for a model on ``device``."""
        if self.chunk_events is not None:
            return self
        return self.model_copy(update={"chunk_events": CPU_CHUNK_EVENTS if device.type == "cpu" else None})

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
    chunks = scored_chunks(
        score,
        eval_set.history,
        max_len,
        config.filter_seen,
        config.chunk_size,
        chunk_events=config.chunk_events,
    )
    for rows, whole, scores in chunks:
        targets = padded_targets(eval_set.targets, rows)
        # top lists: for the beyond-accuracy metrics, and with several targets to count the items above each
        needs_lists = beyond is not None or targets.shape[1] > 1
        top_items, top_scores = top_k(scores, k_max) if needs_lists else (None, None)
        hits = rank_hits(scores, targets, k_max, top_scores)
        accuracy = ranking_metrics(hits, count_targets(targets), config.ks)
        accumulator.add(accuracy)
        if beyond is not None:
            # a seen item left in a short list, scored -inf, is no recommendation
            beyond.add(top_items, top_scores > float("-inf"), targets, whole, accuracy)
        if by_category is not None:
            by_category.add(targets, accuracy)
    return accumulator.means() | (beyond.means() if beyond is not None else {})
