"""Full-catalogue ranking, chunk by chunk: scores for every item -> seen items removed -> top K.

Shared by the offline evaluator and by recommendation, so that what is served is exactly what was
evaluated. Memory is ``O(chunk_size * n_items)`` whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch

from intentrec.data.sequences import PaddedBatch, Sequences, pad_left

#: ``PaddedBatch (B, L)`` -> scores ``(B, n_items)`` of every dataset item.
ScoreFn = Callable[[PaddedBatch], torch.Tensor]


def ranked_chunks(
    score: ScoreFn,
    histories: Sequences,
    k: int,
    max_len: int,
    filter_seen: bool = True,
    chunk_size: int = 1024,
    allowed: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, top_items (B, k), top_scores (B, k))`` for chunks of ``histories``.

    Chunks hold rows of similar length (shortest first), so a chunk of short histories is not padded to
    the longest one; ``rows`` says which rows of ``histories`` a chunk holds, in the order of its results.

    ``top_items`` are dataset item indices, best first. With ``filter_seen`` every item anywhere in a
    user's history (not only the last ``max_len`` the model reads) is excluded: its score is ``-inf``, so
    it only fills the tail of a row when fewer than ``k`` items are left, and callers drop those ranks.
    ``allowed`` (``(n_items,)`` bool, e.g. a category filter) excludes the items where it is False the
    same way. ``score`` may return its scores on a GPU; the lists always come back on the CPU.
    """
    disallowed = torch.from_numpy(~allowed) if allowed is not None else None
    by_length = np.argsort(np.minimum(histories.lengths, max_len), kind="stable")
    for start in range(0, len(histories), chunk_size):
        rows = by_length[start : start + chunk_size]
        scores = score(pad_left(histories, rows, max_len))
        if filter_seen:
            mask_seen(scores, histories, rows)
        if disallowed is not None:
            scores[:, disallowed.to(scores.device)] = float("-inf")
        top_scores, top_items = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        yield rows, top_items.cpu(), top_scores.cpu()


def mask_seen(scores: torch.Tensor, histories: Sequences, rows: np.ndarray) -> None:
    """Set ``scores[b, i] = -inf`` in place for every item ``i`` in the history of ``rows[b]``."""
    lengths = histories.lengths[rows]
    batch_index = np.repeat(np.arange(len(rows)), lengths)
    items = histories.subset(rows).items
    rows_index = torch.from_numpy(batch_index).to(scores.device)
    items_index = torch.from_numpy(items.astype(np.int64)).to(scores.device)
    scores[rows_index, items_index] = float("-inf")


def padded_targets(targets: Sequences, rows: np.ndarray) -> torch.Tensor:
    """``(B, T)`` dataset item indices of each row's targets, ``-1`` where padded."""
    width = int(targets.lengths[rows].max(initial=1))
    padded = pad_left(targets, rows, width).items - 1  # model index -> dataset index, PAD -> -1
    return torch.from_numpy(padded)
