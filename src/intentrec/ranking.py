"""Full-catalogue ranking, chunk by chunk: scores for every item -> seen items removed -> top K.

Shared by the offline evaluator and by recommendation, so that what is served is exactly what was
evaluated. Memory is ``O(chunk_size * n_items)`` whatever the number of users.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np
import polars as pl
import torch

from intentrec.data.sequences import PaddedBatch, Sequences, pad_left

#: ``(inputs, histories)`` -> scores ``(B, n_items)`` of every dataset item: ``inputs (B, L)`` is what the
#: model reads (each row's last ``max_len`` events), ``histories`` the same rows' whole histories.
ScoreFn = Callable[[PaddedBatch, Sequences], torch.Tensor]


def scored_chunks(
    score: ScoreFn,
    histories: Sequences,
    max_len: int,
    filter_seen: bool = True,
    chunk_size: int = 1024,
    allowed: np.ndarray | None = None,
    chunk_events: int | None = None,
) -> Iterator[tuple[np.ndarray, Sequences, torch.Tensor]]:
    """Yield ``(rows, whole, scores (B, n_items))`` for chunks of ``histories``, excluded items at ``-inf``.

    Chunks hold rows of similar length (shortest first), so a chunk of short histories is not padded to
    the longest one; ``rows`` says which rows of ``histories`` a chunk holds, in the order of its scores,
    and ``whole`` is those rows of ``histories`` (``histories.subset(rows)``).
    A chunk has at most ``chunk_size`` rows and, with ``chunk_events``, at most that many padded events
    (rows x width, but at least one row): long histories then go in smaller chunks, which keeps the
    model's (B, L, L) attention small enough to stay in cache.
    With ``filter_seen`` every item anywhere in a user's history (not only the last ``max_len`` the model
    reads) is excluded; ``allowed`` (``(n_items,)`` bool, e.g. a category filter) excludes the items where
    it is False. The scores stay where ``score`` put them (a GPU, maybe).
    """
    disallowed = torch.from_numpy(~allowed) if allowed is not None else None
    widths = np.clip(histories.lengths, 1, max_len)  # pad_left's width of each row alone
    by_length = np.argsort(widths, kind="stable")
    for start, end in _chunk_bounds(widths[by_length], chunk_size, chunk_events):
        rows = by_length[start:end]
        whole = histories.subset(rows)
        scores = score(pad_left(whole, np.arange(len(rows)), max_len), whole)
        if filter_seen:
            mask_seen(scores, whole)
        if disallowed is not None:
            scores[:, disallowed.to(scores.device)] = float("-inf")
        yield rows, whole, scores


def _chunk_bounds(widths: np.ndarray, chunk_size: int, chunk_events: int | None) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of consecutive chunks of rows sorted by ``widths``, within both limits."""
    start = 0
    while start < len(widths):
        end = min(start + chunk_size, len(widths))
        if chunk_events is not None:
            # rows start..j are padded to widths[j], so their cost (j - start + 1) * widths[j] grows with j
            cost = np.arange(1, end - start + 1) * widths[start:end]
            end = start + max(1, int(np.searchsorted(cost, chunk_events, side="right")))
        yield start, end
        start = end


def ranked_chunks(
    score: ScoreFn,
    histories: Sequences,
    k: int,
    max_len: int,
    filter_seen: bool = True,
    chunk_size: int = 1024,
    allowed: np.ndarray | None = None,
    chunk_events: int | None = None,
) -> Iterator[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """Yield ``(rows, top_items (B, k), top_scores (B, k))`` for the chunks of :func:`scored_chunks`.

    ``top_items`` are dataset item indices, best first. An excluded item (seen, or not ``allowed``) has
    score ``-inf``, so it only fills the tail of a row when fewer than ``k`` items are left, and callers
    drop those ranks. The lists always come back on the CPU.
    """
    chunks = scored_chunks(score, histories, max_len, filter_seen, chunk_size, allowed, chunk_events)
    for rows, _, scores in chunks:
        yield rows, *top_k(scores, k)


def top_k(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``top_items, top_scores (B, min(k, n_items))`` of ``scores (B, n_items)``, best first, on the CPU."""
    top_scores, top_items = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    return top_items.cpu(), top_scores.cpu()


def mask_seen(scores: torch.Tensor, histories: Sequences) -> None:
    """Set ``scores[b, i] = -inf`` in place for every item ``i`` in row ``b`` of ``histories`` (one row per
    row of ``scores``)."""
    rows_index = torch.from_numpy(histories.event_rows).to(scores.device)
    items_index = torch.from_numpy(histories.items.astype(np.int64)).to(scores.device)
    scores[rows_index, items_index] = float("-inf")


def padded_targets(targets: Sequences, rows: np.ndarray) -> torch.Tensor:
    """``(B, T)`` dataset item indices of each row's targets, ``-1`` where padded."""
    width = int(targets.lengths[rows].max(initial=1))
    padded = pad_left(targets, rows, width).items - 1  # model index -> dataset index, PAD -> -1
    return torch.from_numpy(padded)


def ranking_table(
    history: Sequences, chunks: Iterable[tuple[np.ndarray, torch.Tensor, torch.Tensor, torch.Tensor | None]]
) -> pl.DataFrame:
    """The top lists of :func:`ranked_chunks` over ``history`` as one table, ``row, user_idx, rank,
    item_idx, score, head_idx``, in the order of ``history``'s rows, excluded items left out.

    Each chunk comes with ``heads (B, n_items)``, which head gave each score (None: head 0 for all).
    """
    parts = [
        pl.DataFrame(
            schema={
                "row": pl.Int64,
                "user_idx": pl.Int32,
                "rank": pl.Int32,
                "item_idx": pl.Int32,
                "score": pl.Float32,
                "head_idx": pl.Int32,
            }
        )
    ]
    for rows, items, scores, heads in chunks:
        n, width = items.shape
        head = heads.gather(1, items.to(heads.device)).cpu() if heads is not None else torch.zeros_like(items)
        parts.append(
            pl.DataFrame(
                {
                    "row": np.repeat(rows, width),
                    "user_idx": np.repeat(history.users[rows], width),
                    "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), n),
                    "item_idx": items.reshape(-1).numpy().astype(np.int32),
                    "score": scores.reshape(-1).numpy(),
                    "head_idx": head.reshape(-1).numpy().astype(np.int32),
                }
            )
        )
    # chunks come in order of history length: put the rows back in the order they were asked for
    return pl.concat(parts).filter(pl.col("score") > float("-inf")).sort("row", "rank")
