"""Beyond-accuracy metrics of top-K lists: diversity, novelty, coverage, personalisation and exploration.

Computed for every model next to the accuracy metrics, from the same top lists the evaluator ranks, so
that a gain in NDCG can be weighed against what it costs in variety. They need what the catalogue knows:
each item's categories (multi-label) and its popularity in the training data (:class:`ItemFeatures`).

Definitions
-----------
For one user with top list ``L`` (the first K items, seen items removed as for accuracy):

- ``entropy@K``: Shannon entropy (bits) of the list's category mix. Each item adds one count to each of
  its categories; the counts are normalised into a distribution ``q`` and ``H = -sum_c q_c log2 q_c``.
  0 when every item shares one category (or no item has one); higher is more varied.
- ``ild@K`` (intra-list diversity): mean over the pairs of items in ``L`` of the Jaccard distance between
  their category sets, ``1 - |A ∩ B| / |A ∪ B|`` (two items without categories are at distance 0). In [0, 1].
- ``novelty@K``: mean self-information of the list's items, ``-log2 p_i`` with
  ``p_i = (n_i + 1) / (N + n_items)``, where ``n_i`` counts item i's training interactions and ``N`` all of
  them (add-one, so an item never trained on is finite), divided by ``log2(N + n_items)``, the most an item
  can have, so that it lies in [0, 1].
- ``explore_recall@K``, ``explore_ndcg@K``: recall and NDCG over the *exploration users* only: those with
  a target that has a category absent from everything in their history ("Don't Waste It", Zhang et al.,
  2025). ``explore_users`` is the share of users that are exploration users.
- Per category ``c`` (:class:`CategoryBreakdown`): recall and NDCG over the users with a target of category
  ``c``, and how many users that is.

Over all evaluated users ``U`` (not a mean of per-user values):

- ``coverage@K``: the share of the catalogue that appears in at least one user's top K.
- ``personalisation@K``: ``1 - mean over user pairs of |L_u ∩ L_v| / K``: 1 when no two users share an item,
  0 when everyone gets the same list. The mean over all ``|U| (|U| - 1) / 2`` pairs is exact and costs
  ``O(n_items)``: ``sum_{u<v} |L_u ∩ L_v| = sum_i m_i (m_i - 1) / 2``, where ``m_i`` counts the lists
  holding item i.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl
import torch
from torch import Tensor

from intentrec.data.dataset import Dataset
from intentrec.data.sequences import Sequences
from intentrec.evaluation.metrics import MetricAccumulator

#: Per-user metrics, averaged over users.
PER_USER = ("entropy", "ild", "novelty")
#: Metrics over the whole set of lists.
OVER_USERS = ("coverage", "personalisation")
#: Accuracy on the exploration users.
EXPLORATION = ("explore_recall", "explore_ndcg")

# Pairwise category overlaps are (B, K, K) per chunk; users are taken this many at a time to bound the
# (B, K, n_categories) category tensor behind them.
_USERS_PER_STEP = 128


@dataclass(frozen=True)
class ItemFeatures:
    """What beyond-accuracy metrics know about items.

    Attributes
    ----------
    categories:
        ``(n_items, n_categories)`` bool: item i has category c. Zero columns when the data has none.
    category_names:
        The ``n_categories`` names, in column order.
    train_counts:
        ``(n_items,)`` int64, the number of training interactions of each item.
    """

    categories: Tensor
    category_names: list[str]
    train_counts: Tensor

    @classmethod
    def from_dataset(cls, dataset: Dataset, train: Sequences) -> ItemFeatures:
        """Categories from ``dataset.items`` and popularity from the training sequences of a split."""
        members = dataset.item_categories()
        names = members["categories"].unique().sort().to_list()
        column = members.select(pl.col("categories").replace_strict(names, range(len(names)), default=0))
        categories = torch.zeros(dataset.n_items, len(names), dtype=torch.bool)
        rows = members["item_idx"].to_numpy().astype(np.int64)
        categories[
            torch.from_numpy(rows), torch.from_numpy(column.to_series().to_numpy().astype(np.int64))
        ] = True
        counts = np.bincount(train.items, minlength=dataset.n_items)
        return cls(categories, names, torch.from_numpy(counts.astype(np.int64)))

    def regrouped(self, categories: Tensor, names: list[str]) -> ItemFeatures:
        """The same items and popularity under other categories: ``categories (n_items, len(names))`` bool
        (another taxonomy, or the clusters a prior learned)."""
        expected = (self.categories.shape[0], len(names))
        if tuple(categories.shape) != expected:
            raise ValueError(f"categories: expected shape {expected}, got {tuple(categories.shape)}")
        return ItemFeatures(categories.bool(), list(names), self.train_counts)

    def of_targets(self, targets: Tensor) -> Tensor:
        """``(B, T, C)`` bool: the categories of ``targets (B, T)`` (none for the padding, -1)."""
        return self.categories[targets.clamp(min=0)] & (targets >= 0)[..., None]


class BeyondAccuracy:
    """Accumulates beyond-accuracy metrics over chunks of users; :meth:`means` gives the results.

    Feed it, per chunk, what the evaluator already has: the top lists, which of their ranks are real
    recommendations (not seen items left in a short list), the targets, and the users' histories.
    """

    def __init__(self, features: ItemFeatures, ks: Sequence[int]) -> None:
        self.features = features
        self.ks = list(ks)
        n_items = features.categories.shape[0]
        total = int(features.train_counts.sum())
        # normalised self-information of every item, (n_items,); float64 like every per-list sum below, so
        # that a list's value does not depend on the order of its items (float32 sums do, in the last bits)
        self.information = -torch.log2(
            (features.train_counts + 1.0).double() / (total + n_items)
        ) / math.log2(total + n_items)
        # entropy is kept divided by its largest value, log2(n_categories), as the accumulator takes [0, 1]
        self.max_entropy = math.log2(max(features.categories.shape[1], 2))
        self.per_user = MetricAccumulator()
        self.explorer_share = MetricAccumulator()
        self.explorer_accuracy = MetricAccumulator()
        self.n_users = 0
        # m_i of the module docstring, per K: how many lists hold item i
        self.lists_holding = {k: torch.zeros(n_items, dtype=torch.int64) for k in self.ks}

    def add(
        self,
        top_items: Tensor,
        valid: Tensor,
        targets: Tensor,
        history: Sequences,
        accuracy: dict[str, Tensor],
    ) -> None:
        """Add one chunk of ``B`` users.

        Parameters
        ----------
        top_items:
            ``(B, K_max)`` dataset item indices, best first.
        valid:
            ``(B, K_max)`` bool, False for ranks that hold no recommendation (a seen item filling a row).
        targets:
            ``(B, T)`` dataset item indices, -1 for padding.
        history:
            The ``B`` users' histories, in the rows' order.
        accuracy:
            The chunk's per-user ``recall@K`` and ``ndcg@K`` from :func:`~intentrec.evaluation.metrics.
            ranking_metrics`, reused for the exploration users.
        """
        values: dict[str, list[Tensor]] = {f"{name}@{k}": [] for name in PER_USER for k in self.ks}
        for start in range(0, len(top_items), _USERS_PER_STEP):
            step = slice(start, start + _USERS_PER_STEP)
            for name, value in self._per_user(top_items[step], valid[step]).items():
                values[name].append(value)
        self.per_user.add({name: torch.cat(parts) for name, parts in values.items()})

        for k in self.ks:
            listed = top_items[:, :k][valid[:, :k]]
            self.lists_holding[k] += torch.bincount(listed, minlength=len(self.lists_holding[k]))
        self.n_users += len(top_items)

        explorers = self._explorers(targets, history)
        self.explorer_share.add({"explore_users": explorers.double()})
        if explorers.any():
            self.explorer_accuracy.add(
                {
                    f"{name}@{k}": accuracy[f"{name.removeprefix('explore_')}@{k}"][explorers]
                    for name in EXPLORATION
                    for k in self.ks
                }
            )

    def means(self) -> dict[str, float]:
        """Every metric, keyed ``"<name>@<K>"`` (and ``"explore_users"``)."""
        results = self.per_user.means()
        for k in self.ks:
            results[f"entropy@{k}"] *= self.max_entropy
        n_items = self.features.categories.shape[0]
        pairs = self.n_users * (self.n_users - 1) / 2
        for k in self.ks:
            holding = self.lists_holding[k].double()
            results[f"coverage@{k}"] = float((holding > 0).sum()) / n_items
            shared = float((holding * (holding - 1) / 2).sum())
            results[f"personalisation@{k}"] = 1.0 - shared / (pairs * k) if pairs else 0.0
        results |= self.explorer_share.means()
        # without a single exploration user the metric is undefined: 0, next to explore_users = 0
        explorers = self.explorer_accuracy.means() if self.explorer_accuracy.n_users else {}
        return results | {
            f"{name}@{k}": explorers.get(f"{name}@{k}", 0.0) for name in EXPLORATION for k in self.ks
        }

    # --- per chunk ----------------------------------------------------------------------------------------

    def _per_user(self, top_items: Tensor, valid: Tensor) -> dict[str, Tensor]:
        """entropy, ild and novelty at every K for a few users: ``(B, K_max)`` lists -> ``(B,)`` each."""
        categories = self.features.categories[top_items].double() * valid[..., None]  # (B, K_max, C)
        overlap = categories @ categories.transpose(1, 2)  # (B, K_max, K_max): |A ∩ B|
        sizes = overlap.diagonal(dim1=1, dim2=2)  # (B, K_max): |A|
        union = sizes[:, :, None] + sizes[:, None, :] - overlap
        distance = torch.where(union > 0, 1 - overlap / union.clamp(min=1), 0.0)  # (B, K_max, K_max)
        distance = distance * (valid[:, :, None] & valid[:, None, :])  # only pairs of listed items
        information = self.information[top_items] * valid  # (B, K_max)
        values: dict[str, Tensor] = {}
        for k in self.ks:
            counts = categories[:, :k].sum(dim=1)  # (B, C): the list's category mix
            share = counts / counts.sum(dim=1, keepdim=True).clamp(min=1)
            entropy = -(share * torch.log2(share.clamp(min=1e-12))).sum(dim=1)
            values[f"entropy@{k}"] = (entropy / self.max_entropy).clamp(0, 1)  # clamp: float rounding
            n = valid[:, :k].sum(dim=1).double()  # items actually listed
            pair_sum = distance[:, :k, :k].sum(dim=(1, 2)) / 2
            values[f"ild@{k}"] = torch.where(n > 1, pair_sum / (n * (n - 1) / 2).clamp(min=1), 0.0)
            values[f"novelty@{k}"] = information[:, :k].sum(dim=1) / n.clamp(min=1)
        return values

    def _explorers(self, targets: Tensor, history: Sequences) -> Tensor:
        """``(B,)`` bool: some target has a category none of the user's history items has."""
        known = history.rows_with(self.features.categories)  # (B, C)
        return (self.features.of_targets(targets) & ~known[:, None, :]).any(dim=(1, 2))


class CategoryBreakdown:
    """Recall@K and NDCG@K per category, over the users with a target of that category."""

    def __init__(self, features: ItemFeatures, k: int) -> None:
        self.features, self.k = features, k
        n_categories = features.categories.shape[1]
        self.users = torch.zeros(n_categories, dtype=torch.int64)
        self.sums = {name: torch.zeros(n_categories, dtype=torch.float64) for name in ("recall", "ndcg")}

    def add(self, targets: Tensor, accuracy: dict[str, Tensor]) -> None:
        """``targets (B, T)`` (-1 padding) and the chunk's per-user metrics from ``ranking_metrics``."""
        has = self.features.of_targets(targets).any(dim=1).double()  # (B, C): a target of category c
        self.users += has.sum(dim=0).long()
        for name, total in self.sums.items():
            total += accuracy[f"{name}@{self.k}"].double() @ has

    def results(self) -> dict[str, dict[str, float]]:
        """``{category: {"recall@K": ..., "ndcg@K": ..., "users": n}}``, categories with most users first."""
        order = torch.argsort(self.users, descending=True, stable=True).tolist()
        return {
            self.features.category_names[c]: {
                f"recall@{self.k}": float(self.sums["recall"][c] / self.users[c]),
                f"ndcg@{self.k}": float(self.sums["ndcg"][c] / self.users[c]),
                "users": int(self.users[c]),
            }
            for c in order
            if self.users[c] > 0
        }
