"""Full-ranking accuracy metrics: HR, Recall, NDCG and MRR at K, for a chunk of users at once.

The evaluator scores every item for a chunk of ``B`` users, masks the items each user has already seen,
and then calls, in order:

1. :func:`rank_hits`: the scores ``(B, n_items)`` and padded ``targets (B, T)`` give ``hits (B, K_max)``,
   the ranks of the ``K_max`` best items that hold a target, ties counting against the targets
   (:func:`hit_matrix` marks them in a top list made elsewhere, such as a recommendation file, whose
   own order decides ties);
2. :func:`count_targets`: the number of distinct targets of each user, ``(B,)``;
3. :func:`ranking_metrics`: per-user values ``(B,)`` for every metric and cut-off K;
4. :meth:`MetricAccumulator.add`: adds the chunk to running sums, so memory stays flat as users grow.

Definitions
-----------
For one user let ``T`` be the set of target items: padding (``-1``) is dropped and an item listed twice
counts once, because a top-K list holds each item at most once, so a repeated target can only be hit once.
Let ``r_1 < r_2 < ...`` be the 1-based ranks within the top K that hold a target.

- ``hr@K`` (hit rate) = 1 if any target is in the top K, else 0.
- ``recall@K`` = (number of targets in the top K) / |T|. The denominator is |T|, not min(|T|, K), so a
  user with more targets than K cannot reach 1.
- ``ndcg@K`` = DCG@K / IDCG@K with binary relevance: DCG@K = sum_i 1 / log2(r_i + 1), and IDCG@K is the DCG
  of an ideal list with min(|T|, K) hits at ranks 1, 2, ..., so ndcg@K = 1 whenever the top K is as good
  as it can be.
- ``mrr@K`` = 1 / r_1, the reciprocal rank of the first hit, or 0 if no target is in the top K.

With one target per user (leave-one-out) hr@K equals recall@K. The reported value of a metric is its mean
over users, and every user must have at least one target.

Examples
--------
>>> top_items = torch.tensor([[7, 3, 5, 1]])  # (B=1, K_max=4), best first
>>> targets = torch.tensor([[5, -1]])  # (B=1, T=2), -1 is padding
>>> hits = hit_matrix(top_items, targets)
>>> values = ranking_metrics(hits, count_targets(targets), ks=[2, 4])
>>> [round(values[name].item(), 4) for name in ("hr@2", "hr@4", "ndcg@4", "mrr@4")]
[0.0, 1.0, 0.5, 0.3333]
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from intentrec.errors import did_you_mean

METRICS: tuple[str, ...] = ("hr", "recall", "ndcg", "mrr")
"""The metric names this module computes, in the order their keys are listed."""

# The accumulator keeps sums as integers counting units of 2**-32 (see MetricAccumulator).
_UNITS_PER_ONE = 2**32


# --- metric names ------------------------------------------------------------------------------------------


def _check_ks(ks: Sequence[int], k_max: int | None = None) -> None:
    """Raise ValueError unless ``ks`` is a non-empty sequence of positive ints, none above ``k_max``."""
    if isinstance(ks, (str, bytes)) or not isinstance(ks, Sequence) or len(ks) == 0:
        raise ValueError(f"ks must be a non-empty sequence of positive integers, got {ks!r}.")
    for k in ks:
        # bool is a subclass of int, but True as a cut-off is surely a mistake.
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"ks must hold positive integers, got {k!r} in {list(ks)}.")
        if k_max is not None and k > k_max:
            raise ValueError(
                f"ks holds K={k}, but the ranking only has the top {k_max} items; "
                f"take topk with at least max(ks)={max(ks)} items."
            )


def metric_names(ks: Sequence[int], names: Sequence[str] = METRICS) -> list[str]:
    """List the metric keys ``"<name>@<K>"`` for every name and cut-off, name-major.

    Parameters
    ----------
    ks:
        Cut-offs, positive integers.
    names:
        Metric names, each one of :data:`METRICS`.

    Returns
    -------
    list of str
        ``[f"{name}@{k}" for name in names for k in ks]``, the key order of :func:`ranking_metrics`.

    Examples
    --------
    >>> metric_names([5, 10], names=("hr", "ndcg"))
    ['hr@5', 'hr@10', 'ndcg@5', 'ndcg@10']
    """
    _check_ks(ks)
    for name in names:
        if name not in METRICS:
            raise ValueError(
                f"unknown metric name {name!r}{did_you_mean(name, METRICS)}; valid names are {list(METRICS)}."
            )
    return [f"{name}@{k}" for name in names for k in ks]


# --- per-chunk computation ---------------------------------------------------------------------------------


def _check_index_matrix(argument: str, tensor: Tensor) -> None:
    """Raise ValueError unless ``tensor`` is a 2-D integer tensor."""
    if not isinstance(tensor, Tensor) or tensor.dim() != 2:
        shape = tuple(tensor.shape) if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{argument} must be a 2-D tensor (B, ·) of item indices, got {shape}.")
    if tensor.dtype == torch.bool or tensor.is_floating_point() or tensor.is_complex():
        raise ValueError(f"{argument} must hold integer item indices, got dtype {tensor.dtype}.")


def _check_targets(targets: Tensor) -> None:
    """Raise ValueError unless ``targets`` is a 2-D integer tensor of item indices padded with -1."""
    _check_index_matrix("targets", targets)
    if targets.numel() and targets.min() < -1:
        raise ValueError(
            f"targets must hold item indices >= 0 or -1 for padding, got {targets.min().item()}."
        )


def hit_matrix(top_items: Tensor, targets: Tensor) -> Tensor:
    """Mark which ranks of each user's top list hold one of that user's targets.

    Parameters
    ----------
    top_items:
        ``(B, K)`` integer item indices, best first, distinct within a row (as :func:`torch.topk` gives).
    targets:
        ``(B, T)`` integer item indices, ``-1`` for padding, anywhere in the row. An item may be listed more
        than once; it still marks its rank once.

    Returns
    -------
    Tensor
        ``(B, K)`` bool, True where ``top_items[b, r]`` is a target of user ``b``.

    Notes
    -----
    The comparison broadcasts to ``(B, K, T)``, which is small next to the ``(B, n_items)`` score matrix
    the top list was taken from.
    """
    _check_index_matrix("top_items", top_items)
    _check_targets(targets)
    if targets.shape[0] != top_items.shape[0]:
        raise ValueError(
            f"top_items and targets must have one row per user, got {top_items.shape[0]} and "
            f"{targets.shape[0]} rows."
        )
    if top_items.numel() and top_items.min() < 0:
        raise ValueError(f"top_items must hold item indices >= 0, got {top_items.min().item()}.")
    # A repeated item would be counted as two hits and push recall above 1, so refuse it here.
    ordered = top_items.sort(dim=1).values  # (B, K)
    repeated = ordered[:, 1:] == ordered[:, :-1]  # (B, K - 1)
    if repeated.any():
        row = int(repeated.any(dim=1).nonzero()[0, 0])
        raise ValueError(f"top_items must not repeat an item within a row; row {row} does.")
    # (B, K, 1) == (B, 1, T) -> (B, K, T). Padding (-1) never equals an item index (all >= 0), and any()
    # over T marks a rank once however often its item appears among the targets.
    return (top_items.unsqueeze(2) == targets.unsqueeze(1)).any(dim=2)


def rank_hits(scores: Tensor, targets: Tensor, k_max: int, top_scores: Tensor | None = None) -> Tensor:
    """Mark the ranks of each user's targets in the full ranking, ties counting against the targets.

    Parameters
    ----------
    scores:
        ``(B, n_items)`` float scores of every item, excluded items at ``-inf``.
    targets:
        ``(B, T)`` integer item indices, ``-1`` for padding; an item listed twice is one target.
    k_max:
        Columns of the result.
    top_scores:
        ``(B, min(k_max, n_items))``, the best scores of each row, best first (:func:`torch.topk`), when the
        caller has them; with several targets they are computed otherwise. One target needs none.

    Returns
    -------
    Tensor
        ``(B, K_max)`` bool on the CPU, True at each 0-based rank ``r < K_max`` that holds a target.

    Notes
    -----
    A target's rank counts every other item scoring *at least* as high, so a tie between a target and
    another item puts the target below it: a model that scores every item alike hits nothing, however
    the items are chunked (a top list would pick among the ties in whatever order :func:`torch.topk` has).
    Targets tied with each other fill consecutive ranks. A target scored ``-inf`` (excluded) or NaN is
    never a hit. With one target this is one comparison per item, several times cheaper than a top list;
    with several, the items above each target are counted in the top list, and once over the catalogue
    at its last score (where ties may run past the list).

    Examples
    --------
    >>> scores = torch.tensor([[0.1, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]])
    >>> rank_hits(scores, torch.tensor([[2], [0]]), k_max=3).int().tolist()
    [[0, 0, 1], [0, 0, 0]]
    >>> rank_hits(scores, torch.tensor([[1, 0], [0, 1]]), k_max=4).int().tolist()
    [[1, 0, 0, 1], [0, 0, 1, 1]]
    """
    _check_targets(targets)
    if scores.dim() != 2 or targets.shape[0] != scores.shape[0]:
        raise ValueError(
            f"rank_hits needs scores (B, n_items) and targets (B, T) with one row per user, got scores "
            f"{tuple(scores.shape)} and targets {tuple(targets.shape)}."
        )
    batch, width = targets.shape
    targets = targets.to(scores.device)
    ordered, order = targets.sort(dim=1)
    repeated = torch.zeros_like(targets, dtype=torch.bool)
    repeated.scatter_(1, order[:, 1:], ordered[:, 1:] == ordered[:, :-1])
    target_scores = scores.gather(1, targets.clamp(min=0))  # (B, T)
    # NaN fails every comparison, so it is dropped here with -inf, padding and repeats
    counted = (targets >= 0) & ~repeated & (target_scores > float("-inf"))
    best_first = target_scores.masked_fill(~counted, float("-inf")).sort(dim=1, descending=True).values
    below_list = torch.zeros_like(counted)
    if width == 1:
        at_least = (scores >= best_first).sum(dim=1, keepdim=True)  # (B, 1), the target itself included
    else:
        if top_scores is None:
            top_scores = torch.topk(scores, min(k_max, scores.shape[1]), dim=1).values
        top_scores = top_scores.to(scores.device)
        if top_scores.isnan().any():  # topk lists NaN first; here, as with one target, NaN is never ranked
            unranked = scores.masked_fill(scores.isnan(), float("-inf"))
            top_scores = torch.topk(unranked, top_scores.shape[1], dim=1).values
        last = top_scores[:, -1:]  # (B, 1)
        in_list = top_scores.shape[1] - _count_below(top_scores.flip(1), best_first)
        at_last = (scores >= last).sum(dim=1, keepdim=True)
        at_least = torch.where(best_first > last, in_list, at_last)  # (B, T): items scoring >= each target
        below_list = best_first < last  # then the list's items all rank before it: no hit
    targets_at_least = width - _count_below(best_first.flip(1), best_first)
    # the i-th best target: i targets before it, then every other item scoring at least as high
    rank = torch.arange(width, device=scores.device) + at_least - targets_at_least
    hit = (best_first > float("-inf")) & ~below_list & (rank < k_max)
    hits = torch.zeros(batch, k_max, dtype=torch.bool)
    rows = torch.arange(batch, device=scores.device)[:, None].expand(batch, width)
    hits[rows[hit].cpu(), rank[hit].long().cpu()] = True
    return hits


def _count_below(ascending: Tensor, values: Tensor) -> Tensor:
    """``(B, T)``: how many entries of each row of ``ascending (B, n)`` are below each ``values (B, T)``."""
    return torch.searchsorted(ascending.contiguous(), values.contiguous(), side="left")


def count_targets(targets: Tensor) -> Tensor:
    """Count the distinct target items of each user, ignoring ``-1`` padding.

    This is the ``n_targets`` that :func:`ranking_metrics` expects: duplicates count once, consistent with
    :func:`hit_matrix`, where a repeated target can only be hit once.

    Parameters
    ----------
    targets:
        ``(B, T)`` integer item indices, ``-1`` for padding.

    Returns
    -------
    Tensor
        ``(B,)`` int64.
    """
    _check_targets(targets)
    ordered = targets.sort(dim=1).values  # (B, T), padding first, equal items next to each other
    # A position starts a new distinct item when it differs from its left neighbour and is not padding.
    starts = torch.ones_like(ordered, dtype=torch.bool)  # (B, T)
    starts[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return (starts & (ordered >= 0)).sum(dim=1)


def ranking_metrics(hits: Tensor, n_targets: Tensor, ks: Sequence[int]) -> dict[str, Tensor]:
    """Compute hr, recall, ndcg and mrr at every K in ``ks`` for each user (definitions: module docstring).

    Parameters
    ----------
    hits:
        ``(B, K_max)`` bool from :func:`hit_matrix`.
    n_targets:
        ``(B,)`` integer, the number of distinct targets of each user (:func:`count_targets`); at least 1.
    ks:
        Cut-offs, each between 1 and ``K_max``.

    Returns
    -------
    dict of str to Tensor
        Keys in the order of :func:`metric_names` (``"hr@10"``, ...); values ``(B,)`` float64.
    """
    if not isinstance(hits, Tensor) or hits.dim() != 2 or hits.dtype != torch.bool:
        got = f"{tuple(hits.shape)} {hits.dtype}" if isinstance(hits, Tensor) else type(hits).__name__
        raise ValueError(f"hits must be a 2-D bool tensor (B, K_max) from hit_matrix, got {got}.")
    batch, k_max = hits.shape
    _check_ks(ks, k_max)
    if (
        not isinstance(n_targets, Tensor)
        or tuple(n_targets.shape) != (batch,)
        or n_targets.dtype == torch.bool
        or n_targets.is_floating_point()
        or n_targets.is_complex()
    ):
        got = f"{tuple(n_targets.shape)} {n_targets.dtype}" if isinstance(n_targets, Tensor) else n_targets
        raise ValueError(f"n_targets must be an integer tensor of shape ({batch},), one per user, got {got}.")
    n_targets = n_targets.to(hits.device)
    if (n_targets < 1).any():
        row = int((n_targets < 1).nonzero()[0, 0])
        raise ValueError(
            f"n_targets must be at least 1 for every user, but row {row} has {n_targets[row].item()}; "
            "leave users without a target out of the evaluation."
        )
    hits_at = hits.to(torch.float64).cumsum(dim=1)  # (B, K_max): column k - 1 counts the hits in the top k
    if (hits_at[:, -1] > n_targets).any():
        row = int((hits_at[:, -1] > n_targets).nonzero()[0, 0])
        raise ValueError(
            f"row {row} of hits has {int(hits_at[row, -1])} hits but n_targets says "
            f"{n_targets[row].item()} targets; count distinct targets with count_targets()."
        )

    ranks = torch.arange(1, k_max + 1, device=hits.device)  # (K_max,)
    discount = 1.0 / torch.log2(ranks.to(torch.float64) + 1.0)  # (K_max,)
    dcg_at = (hits * discount).cumsum(dim=1)  # (B, K_max)
    ideal_dcg_at = discount.cumsum(dim=0)  # (K_max,): index j - 1 holds the DCG of j hits at the top
    # Rank of each user's first hit, K_max + 1 when there is none: (B,)
    first_hit = torch.where(hits, ranks, k_max + 1).amin(dim=1).to(torch.float64)
    n = n_targets.to(torch.float64)

    values: dict[str, Tensor] = {}
    for k in ks:
        hits_k = hits_at[:, k - 1]  # (B,)
        values[f"hr@{k}"] = (hits_k > 0).to(torch.float64)
        values[f"recall@{k}"] = hits_k / n
        values[f"ndcg@{k}"] = dcg_at[:, k - 1] / ideal_dcg_at[n_targets.clamp(max=k) - 1]
        values[f"mrr@{k}"] = torch.where(first_hit <= k, 1.0 / first_hit, 0.0)
    return {name: values[name] for name in metric_names(ks)}


# --- accumulation over chunks ------------------------------------------------------------------------------


class MetricAccumulator:
    """Mean of each metric over all users, fed one chunk of users at a time.

    Only one running sum per metric is kept, so memory does not grow with the number of users.

    The sums are Python integers counting units of 2**-32: each per-user value is rounded to that grid
    and added exactly. Integer addition is associative, so the means are bit-for-bit the same however the
    users are split into chunks, which float sums (float64 included) do not promise: adding the same
    numbers in another grouping can change the last bits. The rounding moves a mean by at most 2**-33
    (about 1e-10), far below any digit that is reported.

    Examples
    --------
    >>> accumulator = MetricAccumulator()
    >>> accumulator.add({"hr@10": torch.tensor([1.0, 0.0])})
    >>> accumulator.add({"hr@10": torch.tensor([1.0])})
    >>> accumulator.n_users, accumulator.means()
    (3, {'hr@10': 0.6666666666666666})
    """

    def __init__(self) -> None:
        self._totals: dict[str, int] = {}  # metric name -> sum of values, in units of 2**-32
        self._n_users = 0

    @property
    def n_users(self) -> int:
        """The number of users added so far."""
        return self._n_users

    def add(self, values: Mapping[str, Tensor]) -> None:
        """Add one chunk of per-user values, as returned by :func:`ranking_metrics`.

        Parameters
        ----------
        values:
            Metric name to ``(B,)`` values in ``[0, 1]``, the same names in every chunk.
        """
        if not values:
            raise ValueError("values must hold at least one metric.")
        names = list(values)
        if self._totals and set(names) != set(self._totals):
            raise ValueError(
                f"every chunk must hold the same metrics: earlier chunks had {sorted(self._totals)}, "
                f"this one has {sorted(names)}."
            )
        shapes = {name: tuple(values[name].shape) for name in names}
        batch = shapes[names[0]][0] if len(shapes[names[0]]) == 1 else -1
        if any(shape != (batch,) for shape in shapes.values()):
            raise ValueError(f"values must all have shape (B,) for the same B, got {shapes}.")

        stacked = torch.stack([values[name].to(torch.float64) for name in names])  # (M, B)
        # The [0, 1] bound keeps each chunk's integer sum (at most B * 2**32) far from int64 overflow;
        # NaN fails both comparisons, so it is caught too.
        outside = ~((stacked >= 0) & (stacked <= 1))  # (M, B)
        if outside.any():
            metric, row = (int(i) for i in outside.nonzero()[0])
            raise ValueError(
                f"metric values must lie in [0, 1], but {names[metric]!r} is "
                f"{stacked[metric, row].item()} for row {row} of this chunk."
            )
        units = torch.round(stacked * _UNITS_PER_ONE).to(torch.int64).sum(dim=1)  # (M,)
        for name, total in zip(names, units.tolist(), strict=True):
            self._totals[name] = self._totals.get(name, 0) + total
        self._n_users += batch

    def means(self) -> dict[str, float]:
        """Return the mean of each metric over all users added, in the order of the first chunk's keys."""
        if self._n_users == 0:
            raise ValueError("no users have been added, so there is no mean; call add() first.")
        # int / int is correctly rounded, so the only error is the 2**-32 grid.
        return {name: total / (self._n_users * _UNITS_PER_ONE) for name, total in self._totals.items()}
