"""Human priors: what practitioners already know about a target, as values a prior head is trained on.

    taxonomy   the target item's categories (multi-label; the rarest folded into one "(other)" head)
    clusters   communities of the item co-occurrence graph of the training sequences, for catalogues
               without a taxonomy
    events     how the user met the target: the log's event types (view / cart / buy, rating / tag), or,
               for a log of ratings only, "loved" (rating >= ``loved_rating``) vs "watched"
    horizon    how far ahead the target is: the model predicts the next ``pred_len`` items, cut into
               ``segments`` (the next few = short term, further ahead = long term)

What a prior learns from the data (categories folded into "(other)", clusters, horizon offsets) comes from
the training part of the split, never from validation or test targets; the names of the event types, like
the item IDs, are the whole log's, and a fit is refused when one of them is no training target's (its head
would never learn). :mod:`intentrec.models.heads` gives every value its own head.
"""

from __future__ import annotations

from typing import Literal

import networkx as nx
import numpy as np
import polars as pl
import torch
import torch.nn.functional as F

from intentrec.data.dataset import Dataset
from intentrec.data.sequences import PAD, Sequences
from intentrec.errors import ConfigError

#: The head of items outside the kept categories (or clusters).
OTHER = "(other)"

PriorKind = Literal["taxonomy", "clusters", "events", "horizon"]
#: Priors that are properties of the item (they restrict which items a head may give).
ITEM_PRIORS = ("taxonomy", "clusters")


class Prior:
    """One prior's values (``names``) and how to read them off a target.

    Item priors hold ``membership (n_items, V)`` bool; the events prior holds ``codes (n_interactions,)``,
    the value of every row of the Dataset's interactions; the horizon prior holds ``segment (pred_len,)``,
    the value of a target ``k`` items ahead at ``k - 1``.
    """

    def __init__(
        self,
        kind: PriorKind,
        names: list[str],
        membership: torch.Tensor | None = None,
        codes: torch.Tensor | None = None,
        segment: torch.Tensor | None = None,
    ) -> None:
        self.kind, self.names = kind, names
        self.membership, self.codes, self.segment = membership, codes, segment
        # indexed by model item (row 0, the padding item, carries nothing), once rather than every batch
        self._by_model_item = F.pad(membership, (0, 0, 1, 0)) if membership is not None else None

    def values(self, targets: torch.Tensor, target_rows: torch.Tensor | None) -> torch.Tensor:
        """``(P, K, V)`` bool: which values each target carries.

        ``targets (P, K)`` model item indices of the targets 1..K ahead (``PAD`` = none), ``target_rows
        (P, K)`` their rows in the interactions table (-1 = none; needed by the events prior only).
        """
        if self._by_model_item is not None:
            self._by_model_item = self._by_model_item.to(targets.device)  # moved once, at the first batch
            return self._by_model_item[targets]
        present = (targets != PAD)[..., None]
        if self.codes is not None:
            if target_rows is None:
                raise ValueError("the events prior needs the targets' interaction rows")
            self.codes = self.codes.to(targets.device)
            code = self.codes[target_rows.clamp(min=0)]
        else:
            assert self.segment is not None
            self.segment = self.segment.to(targets.device)
            code = self.segment[: targets.shape[1]].expand_as(targets)
        return F.one_hot(code, len(self.names)).bool() & present

    # --- the priors, derived from a dataset and the training part of its split ----------------------------

    @classmethod
    def taxonomy(
        cls, dataset: Dataset, train: Sequences, max_values: int, coarser: dict[str, str] | None = None
    ) -> Prior:
        """Item categories, the most frequent among training targets first, coarsened to ``max_values``.

        ``coarser`` maps categories to a coarser level first (``{"Sci-Fi": "Genre fiction", ...}``); a
        category it does not name stays as it is.
        """
        item_categories = dataset.item_categories()
        if coarser:
            item_categories = item_categories.with_columns(pl.col("categories").replace(coarser)).unique(
                maintain_order=True
            )  # two categories of one item may map to the same coarse one
        targets = pl.DataFrame({"item_idx": train.items[_target_positions(train)]})
        counts = (
            targets.join(item_categories, on="item_idx")
            .group_by("categories")
            .len()
            .sort(["len", "categories"], descending=[True, False])
        )
        if counts.is_empty():
            described = item_categories["item_idx"].n_unique()
            raise ConfigError(
                f"the taxonomy prior needs item categories, but no training target of {dataset.card.source} "
                f"has one ({described} items have categories); use --priors clusters to learn groups from "
                "the sequences instead."
            )
        names: list[str] = counts["categories"].to_list()[:max_values]
        members = item_categories.filter(pl.col("categories").is_in(names)).select(
            pl.col("item_idx").cast(pl.Int64),
            pl.col("categories").replace_strict(names, range(len(names)), return_dtype=pl.Int64),
        )
        return cls._item_groups("taxonomy", names, members, dataset.n_items, max_values)

    @classmethod
    def clusters(cls, dataset: Dataset, train: Sequences, n_clusters: int, seed: int = 0) -> Prior:
        """The ``n_clusters`` largest Louvain communities of the graph whose edges join items that follow
        each other in a training sequence (weighted by how often); every other item is ``"(other)"``."""
        following = _target_positions(train)
        pairs = pl.DataFrame({"a": train.items[following - 1], "b": train.items[following]}).filter(
            pl.col("a") != pl.col("b")
        )
        edges = (
            pairs.select(pl.min_horizontal("a", "b").alias("a"), pl.max_horizontal("a", "b").alias("b"))
            .group_by("a", "b")
            .len()
            .sort("a", "b")
        )  # a fixed edge order: Louvain's result depends on it
        graph = nx.Graph()
        graph.add_weighted_edges_from(edges.iter_rows())
        communities = nx.community.louvain_communities(graph, weight="weight", seed=seed)
        # largest first; ties by smallest member, so the order (and the names) do not depend on set order
        communities = sorted(communities, key=lambda group: (-len(group), min(group)))[:n_clusters]
        names = [f"cluster {number}" for number in range(1, len(communities) + 1)]
        members = pl.DataFrame(
            {
                "item_idx": [item for group in communities for item in group],
                "categories": [value for value, group in enumerate(communities) for _ in group],
            },
            schema={"item_idx": pl.Int64, "categories": pl.Int64},
        )
        return cls._item_groups("clusters", names, members, dataset.n_items, n_clusters + 1)

    @classmethod
    def events(cls, dataset: Dataset, loved_rating: float) -> Prior:
        """The event type of each interaction, or "loved" / "watched" rating bands for a ratings-only log."""
        interactions = dataset.interactions
        event_counts = interactions["event"].value_counts(sort=True)
        if event_counts.height >= 2:
            names = event_counts["event"].to_list()  # most frequent first
            code = pl.col("event").replace_strict(names, range(len(names)), return_dtype=pl.Int64)
        elif interactions["value"].null_count() < interactions.height:
            names = ["watched", "loved"]
            code = (pl.col("value").fill_null(float("-inf")) >= loved_rating).cast(pl.Int64)
        else:
            raise ConfigError(
                f"the events prior needs two event types or ratings, but {dataset.card.source} has only "
                f"'{event_counts['event'][0]}' events without values."
            )
        codes = interactions.select(code)[:, 0].to_torch()
        return cls("events", names, codes=codes)

    def untrained(self, train: Sequences) -> list[str]:
        """The values of the events prior that no training target has: their heads would never learn."""
        assert self.codes is not None and train.rows is not None
        trained = torch.bincount(self.codes[train.rows[_target_positions(train)]], minlength=len(self.names))
        return [name for name, count in zip(self.names, trained.tolist(), strict=True) if count == 0]

    @classmethod
    def horizon(cls, pred_len: int, segments: int) -> Prior:
        """``segments`` near-equal ranges of ``1 .. pred_len`` items ahead, nearest first."""
        if segments > pred_len:
            raise ConfigError(f"heads.segments ({segments}) cannot exceed heads.pred_len ({pred_len}).")
        segment = torch.arange(pred_len) * segments // pred_len
        names = []
        for value in range(segments):
            ahead = (torch.nonzero(segment == value).squeeze(1) + 1).tolist()
            names.append(f"next {ahead[0]}" if len(ahead) == 1 else f"next {ahead[0]}-{ahead[-1]}")
        return cls("horizon", names, segment=segment)

    @classmethod
    def _item_groups(
        cls, kind: PriorKind, names: list[str], members: pl.DataFrame, n_items: int, max_values: int
    ) -> Prior:
        """Membership from ``item_idx, categories`` (value index) pairs; items of no kept group form the
        ``"(other)"`` head, for which the least frequent group gives way when there are ``max_values``."""
        membership = torch.zeros(n_items, len(names), dtype=torch.bool)
        membership[members["item_idx"].to_torch(), members["categories"].to_torch()] = True
        grouped = membership.any(dim=1)
        if grouped.all():
            return cls(kind, names, membership=membership)
        if len(names) == max_values:
            names, membership = names[:-1], membership[:, :-1]
        other = ~membership.any(dim=1, keepdim=True)
        return cls(kind, [*names, OTHER], membership=torch.cat([membership, other], dim=1))


def _target_positions(train: Sequences) -> np.ndarray:
    """Indices into ``train.items`` of every event that is some position's target (all but the first)."""
    first = np.zeros(len(train.items), dtype=bool)
    first[train.offsets[:-1][train.lengths > 0]] = True
    return np.flatnonzero(~first)
