"""Prior heads: one light adapter per value of a human prior on the shared backbone output.

Following "Don't Waste It" (Zhang et al., 2025): the backbone encodes a history once; each head turns its
hidden state into its own query with a Medusa-style residual block

    q_c = normalize(h + SiLU(W_c h + b_c))                        D² + D parameters per head

Head ``c`` is trained only on the positions whose target item carries prior value ``c`` (a taxonomy
category; an item with several categories trains several heads), by cross-entropy against the other
items of its own category ("in-group" negatives). The paper samples those negatives and scores by cosine
similarity with a learned temperature (``objective="sampled", cosine=True``); the default here is the
full softmax over the group with dot products, which trains far faster in IntentRec's loop (BENCHMARKS.md).
At inference every head scores every item, items outside a head's category are impossible for it, and an
item's score is its best head's:

    score(i) = max_c [ s · sim(q_c, e_i) + log w_c ]   over the heads c whose category holds i

where ``s`` is the learned inverse temperature (1 with dot products) and ``w_c`` a per-head weight that a user
can change at request time to steer the list towards, or away from, some intents (``w_c = 0`` drops a
head). The head that gives an item its score is the reason the item is recommended.

The taxonomy is made coarse enough to train: the ``max_values - 1`` categories most frequent among the
training targets keep a head each, and every other item (rarer categories, or none) shares one
``"(other)"`` head, so every target trains at least one head.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import polars as pl
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from intentrec.data.dataset import Dataset
from intentrec.data.sequences import Sequences

#: The head of items outside the kept categories.
OTHER = "(other)"


class HeadsConfig(BaseModel):
    """Which prior splits the backbone's output into heads, and how the heads are trained."""

    model_config = ConfigDict(extra="forbid")

    prior: Literal["none", "taxonomy"] = Field(
        "none", description="'taxonomy': one head per item category; 'none': the single next-item head."
    )
    max_values: int = Field(20, ge=2, description="Heads at most: the most frequent categories + '(other)'.")
    objective: Literal["softmax", "sampled"] = Field(
        "softmax",
        description="'softmax': cross-entropy over every candidate item; 'sampled': InfoNCE against "
        "'negatives' sampled ones (the paper's).",
    )
    cosine: bool = Field(
        False, description="Cosine similarity with a learned temperature (the paper's), else dot products."
    )
    negatives: int = Field(1024, ge=1, description="'sampled': negatives per head and batch.")
    in_group_negatives: bool = Field(
        True, description="A head's candidates (negatives) are the items of its own category."
    )
    frequency_weights: bool = Field(
        True, description="Weight head losses by their share of targets (else every head counts the same)."
    )


class Prior:
    """A prior's values and which items carry them: ``membership (n_items, n_values)`` bool."""

    def __init__(self, names: list[str], membership: torch.Tensor) -> None:
        self.names = names
        self.membership = membership

    @classmethod
    def taxonomy(cls, dataset: Dataset, train: Sequences, max_values: int) -> Prior:
        """Item categories, the most frequent among training targets first, coarsened to ``max_values``."""
        targets = pl.DataFrame({"item_idx": train.items[_target_positions(train)]})
        counts = (
            targets.join(dataset.items.select("item_idx", "categories"), on="item_idx")
            .explode("categories")
            .drop_nulls("categories")
            .group_by("categories")
            .len()
            .sort(["len", "categories"], descending=[True, False])
        )
        names: list[str] = counts["categories"].to_list()[:max_values]
        categorised = dataset.items["categories"].list.eval(pl.element().is_in(names)).list.any()
        if len(names) == max_values and not categorised.all():
            names = names[:-1]  # the least frequent kept category makes room for the "(other)" head
        membership = torch.zeros(dataset.n_items, len(names) + 1, dtype=torch.bool)
        members = dataset.items.select("item_idx", "categories").explode("categories")
        members = members.filter(pl.col("categories").is_in(names)).select(
            pl.col("item_idx").cast(pl.Int64),
            pl.col("categories").replace_strict(names, range(len(names)), return_dtype=pl.Int64),
        )
        membership[members["item_idx"].to_torch(), members["categories"].to_torch()] = True
        membership[:, -1] = ~membership[:, :-1].any(dim=1)  # the items no kept category holds
        if not membership[:, -1].any():
            return cls(names, membership[:, :-1])
        return cls([*names, OTHER], membership)


class PriorHeads(nn.Module):
    """``n_heads`` residual adapters and the learned inverse temperature they share."""

    def __init__(self, dim: int, prior: Prior, config: HeadsConfig) -> None:
        super().__init__()
        self.names = prior.names
        self.config = config
        n_heads = len(prior.names)
        # (H, D, D) and (H, D): all heads in one batched matmul; zero weights start every head at identity
        self.weight = nn.Parameter(torch.zeros(n_heads, dim, dim))
        self.bias = nn.Parameter(torch.zeros(n_heads, dim))
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.05))) if config.cosine else None
        # row 0 is the padding item, in no category, as in the model's item table
        self.register_buffer("membership", F.pad(prior.membership, (0, 0, 1, 0)), persistent=False)

    def scale(self) -> torch.Tensor | float:
        """The inverse temperature multiplying similarities (1 with dot products)."""
        if self.log_scale is None:
            return 1.0
        return self.log_scale.exp().clamp(max=100.0)  # the cap keeps the softmax from collapsing

    def items(self, table: torch.Tensor) -> torch.Tensor:
        """The model's item table as the heads compare against it (unit rows with cosine similarity)."""
        return F.normalize(table, dim=-1) if self.config.cosine else table

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` hidden states -> ``(..., H, D)`` queries, one per head (unit length with cosine)."""
        adapted = torch.einsum("...d,hed->...he", hidden, self.weight) + self.bias
        return self._finish(hidden.unsqueeze(-2) + F.silu(adapted))

    def query(self, hidden: torch.Tensor, head: int) -> torch.Tensor:
        """``(P, D)`` -> ``(P, D)``: one head's queries, for training on that head's positions only."""
        return self._finish(hidden + F.silu(hidden @ self.weight[head].T + self.bias[head]))

    def _finish(self, queries: torch.Tensor) -> torch.Tensor:
        return F.normalize(queries, dim=-1) if self.config.cosine else queries

    def score(
        self, hidden: torch.Tensor, items: torch.Tensor, head_weights: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of every dataset item and the head each score comes from.

        ``hidden (B, D)``, ``items (n_items + 1, D)`` (row 0 padding), ``head_weights (H,)`` >= 0 or None
        -> ``scores (B, n_items)`` and ``head (B, n_items)`` int64. An item no head may give (all its heads
        weighted 0) scores ``-inf``.
        """
        logits = self.scale() * self(hidden) @ self.items(items[1:]).T  # (B, H, n_items)
        if head_weights is not None:
            logits = logits + torch.log(head_weights)[None, :, None]
        logits = logits.masked_fill(~self.membership[1:].T[None], float("-inf"))
        return logits.max(dim=1)

    def parameter_count(self) -> int:
        return self.weight.numel() + self.bias.numel()


def prior_heads_loss(
    heads: PriorHeads, hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """Every head's cross-entropy on the positions whose target carries its value, averaged as configured.

    ``hidden (N, D)`` one row per supervised position, ``targets (N,)`` model item indices, ``items
    (n_items + 1, D)`` the model's item table.
    """
    config = heads.config
    items = heads.items(items)
    trains = heads.membership[targets]  # (N, H): which heads each position trains
    losses, counts = [], []
    for head in range(trains.shape[1]):
        rows = trains[:, head].nonzero().squeeze(1)
        if len(rows) == 0:
            continue
        queries = heads.query(hidden[rows], head)
        if config.objective == "softmax":
            logits = heads.scale() * queries @ items[1:].T  # (P, n_items)
            if config.in_group_negatives:
                logits = logits.masked_fill(~heads.membership[1:, head][None], float("-inf"))
            losses.append(F.cross_entropy(logits, targets[rows] - 1))
        else:
            pool = heads.membership[:, head].nonzero().squeeze(1) if config.in_group_negatives else None
            losses.append(_info_nce(queries, targets[rows], items, pool, config.negatives, heads))
        counts.append(len(rows))
    weights = torch.tensor(counts, dtype=hidden.dtype, device=hidden.device)
    if not config.frequency_weights:
        weights = torch.ones_like(weights)
    return (torch.stack(losses) * weights).sum() / weights.sum()


def _info_nce(
    queries: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    pool: torch.Tensor | None,
    n_negatives: int,
    heads: PriorHeads,
) -> torch.Tensor:
    """Mean InfoNCE of ``queries (P, D)`` against their ``targets (P,)`` and shared negatives from ``pool``
    (model item indices; None: the whole catalogue)."""
    if pool is None:
        negatives = torch.randint(1, items.shape[0], (n_negatives,), device=queries.device)
    else:
        negatives = pool[torch.randint(len(pool), (n_negatives,), device=queries.device)]
    positive = (queries * items[targets]).sum(-1, keepdim=True)  # (P, 1)
    negative = queries @ items[negatives].T  # (P, M)
    logits = heads.scale() * torch.cat([positive, negative], dim=1)
    # masked after scaling: -inf times the scale would give the scale a NaN gradient
    accidental_hit = F.pad(negatives[None, :] == targets[:, None], (1, 0))
    return F.cross_entropy(logits.masked_fill(accidental_hit, float("-inf")), torch.zeros_like(targets))


def _target_positions(train: Sequences) -> np.ndarray:
    """Indices into ``train.items`` of every event that is some position's target (all but the first)."""
    first = np.zeros(len(train.items), dtype=bool)
    first[train.offsets[:-1][train.lengths > 0]] = True
    return np.flatnonzero(~first)
