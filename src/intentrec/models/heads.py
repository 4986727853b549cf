"""Prior heads: one light adapter per value of a human prior on the shared backbone output.

Following "Don't Waste It" (Zhang et al., 2025): the backbone encodes a history once; each head turns its
hidden state into its own query with a Medusa-style residual block

    q_c = h + SiLU(W_c h + b_c)                                   D² + D parameters per head

(L2-normalised, as the items are, when ``cosine``).

A prior is something practitioners already know about a target (the item's categories or co-occurrence
cluster, the event type, how far ahead it is: :mod:`intentrec.models.priors`), and its values are the heads.

Head ``c`` is trained only on the (position, target) pairs whose target carries value ``c``, by
cross-entropy against the other items of its own category when the prior is an item property
("in-group" negatives); a target ``k`` items ahead counts ``discount^(k-1)``, and each head's loss is
weighted by its share of the targets. The paper samples the negatives and scores by cosine similarity with a
learned temperature (``objective="sampled", cosine=True``); the default here is the full softmax over the
group with dot products, which trains far faster in IntentRec's loop (BENCHMARKS.md).

An in-group loss never compares items of different heads, so it leaves each head's scores on a scale of
their own, and comparing heads at inference then compares scales rather than preferences (MovieLens-100K:
taxonomy heads cost 16% of NDCG@10 that way). When heads train against in-group negatives, two losses over
the whole catalogue are therefore added by default: the plain next-item loss on the backbone output
(``next_item_loss``) and the merged loss (``merged_loss``), the cross-entropy of the next item under

    P(i | u) ∝ sum_c exp(s_c(i))      over the heads c that may give item i

which is what the "sum" merge ranks by. It is one softmax over every (head, item) pair, whose positives are
the target's pairs: a few times the cost of the next-item loss, plus every head's query at every position.
The losses are computed in :mod:`intentrec.models.head_losses`.

By default the heads' losses train the backbone and the item table with the heads, end to end, as in the
paper. With ``end_to_end=False`` the heads are adapters only: their losses stop at the heads, the backbone and
the items learn from the next-item loss alone, and the backbone is the one a run without heads would train.
With ``backbone_from`` the heads are fitted afterwards on a trained run's backbone and items, which stay
frozen: one backbone serves many sets of heads, each far cheaper to fit than a run.

Two priors compose in one of three ways (first prior ``A``, second ``B``):

    additive        |A| + |B| heads: a target trains its A head and its B head
    multiplicative  |A| x |B| heads, one block per pair of values
    hierarchical    |A| x |B| heads from |A| + 1 blocks: q_ab = g(f_a(h) + e_b), a block per value of A,
                    then one shared block g on top with a learned embedding e_b per value of B

At inference every head scores every item, items outside a head's category are impossible for it, and an
item's score is its best head's ("max", the paper's) or the sum over its heads ("sum", the default with the
merged loss):

    max:  score(i) = max_c [ s · sim(q_c, e_i) + log w_c ]        over the heads c whose category holds i
    sum:  score(i) = log sum_c w_c exp(s · sim(q_c, e_i))

where ``s`` is the learned inverse temperature (1 with dot products) and ``w_c`` a per-head weight that a user
can change at request time (:class:`Steering`) to move the list towards, or away from, some intents
(``w_c = 0`` drops a head). The head that gives an item its score (the largest term of the sum) is the
reason the item is recommended.

The backbone's own next-item distribution can join the heads as one more head, ``"next"``, that may give
any item. Its weight ``w_0`` (``backbone_weight``, 0 by default, steerable) mixes two distributions over the
catalogue, the heads' merged list made a softmax over items and the backbone's softmax at its training
temperature:

    score(i) = log( P_heads(i | u) + w_0 P_own(i | u) )

so that ``w_0`` slides the list from the heads' (0) to the backbone's alone (large ``w_0``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator, model_validator
from torch import nn

from intentrec.data.dataset import Dataset
from intentrec.data.sequences import PAD, Sequences
from intentrec.errors import ConfigError, did_you_mean
from intentrec.models.priors import ITEM_PRIORS, Prior, PriorKind
from intentrec.settings import Settings

#: The backbone's own next-item scores: the one head of a model without prior heads, and with prior heads
#: one more head that may give any item when weighed in (``backbone_weight``).
NEXT_ITEM_HEAD = "next"

Merge = Literal["max", "sum", "mix"]


class HeadsConfig(Settings):
    """Which priors split the backbone's output into heads, and how the heads are trained."""

    priors: list[PriorKind] = Field(
        [], description="At most two of taxonomy, clusters, events, horizon; none: one next-item head."
    )
    composition: Literal["additive", "multiplicative", "hierarchical"] = Field(
        "hierarchical", description="How two priors combine into heads (see the module docstring)."
    )
    max_values: int = Field(20, ge=2, description="Taxonomy heads at most: frequent categories + '(other)'.")
    coarser_categories: dict[str, str] | None = Field(
        None, description="'taxonomy': category -> coarser category, applied before the heads are chosen."
    )
    clusters: int = Field(16, ge=2, description="'clusters': the largest communities kept, + '(other)'.")
    loved_rating: float = Field(4.0, description="'events' on a ratings-only log: 'loved' from this rating.")
    pred_len: int = Field(8, ge=2, description="'horizon': how many next items are predicted.")
    segments: int = Field(2, ge=2, description="'horizon': heads the predicted window is cut into.")
    discount: float = Field(0.9, gt=0, le=1, description="'horizon': a target k ahead weighs discount^(k-1).")
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
    merge: Merge | None = Field(
        None,
        description="How head scores combine: 'max' (an item's best head, the paper's), 'sum' (log of the "
        "sum of exp(score) over an item's heads, what the merged loss trains) or 'mix' (a mixture weighted "
        "by the backbone's own probability of each head's items); None: 'sum' with the merged loss, "
        "else 'max'.",
    )
    merged_loss: float | None = Field(
        None,
        ge=0,
        description="Weight of a cross-entropy of the next item over the whole catalogue, scored by every "
        "head that may give it ('sum' merge): it sets the scale on which heads are compared. None: 1 when "
        "heads train against in-group negatives, else 0.",
    )
    next_item_loss: float | None = Field(
        None,
        ge=0,
        description="Weight of the plain next-item loss on the backbone output, added to the heads' loss "
        "(0: the heads' loss alone, as in the paper); None: 1 when heads train against in-group negatives "
        "or not end to end, else 0.",
    )
    end_to_end: bool = Field(
        True,
        description="The heads' losses train the backbone and the item table too (the paper's); false: the "
        "heads learn on top of a backbone and items that the next-item loss alone trains.",
    )
    backbone_weight: float = Field(
        0.0,
        ge=0,
        description="Weight of the backbone's own next-item distribution mixed into the heads' list as "
        "one more head, 'next' (0: the heads alone; see the module docstring). Steerable per request.",
    )
    backbone_from: Path | None = Field(
        None,
        description="A trained run (folder) whose backbone and item table the heads are fitted on, frozen: "
        "only the heads learn (so next_item_loss is off). Its dataset and its model, split, "
        "loss.normalize and loss.temperature settings must be this run's.",
    )

    @model_validator(mode="before")
    @classmethod
    def _single_prior_field(cls, data: Any) -> Any:
        """Runs saved before several priors existed say ``"prior": "none" | "taxonomy"``."""
        if isinstance(data, dict) and "prior" in data and "priors" not in data:
            data = dict(data)
            prior = data.pop("prior")
            data["priors"] = [] if prior == "none" else [prior]
        return data

    @field_validator("priors")
    @classmethod
    def _two_distinct_priors(cls, priors: list[str]) -> list[str]:
        if len(priors) > 2 or len(set(priors)) < len(priors):
            raise ValueError(f"give at most two different priors, got {priors}.")
        if set(priors) == set(ITEM_PRIORS):
            raise ValueError("taxonomy and clusters are both item groupings; choose one of them.")
        return priors

    @model_validator(mode="after")
    def _backbone_has_a_loss(self) -> HeadsConfig:
        if not self.end_to_end and self.next_item_loss == 0:
            raise ValueError(
                "end_to_end=false leaves the backbone only the next-item loss; next_item_loss must be > 0."
            )
        if self.backbone_from is not None and not self.priors:
            raise ValueError("backbone_from fits prior heads on a trained run; name them in priors.")
        return self

    @property
    def horizon(self) -> int:
        """How many next items each position is trained to predict."""
        return self.pred_len if "horizon" in self.priors else 1

    @property
    def in_group(self) -> bool:
        """Whether some head trains against the items of its own category only."""
        return self.in_group_negatives and any(prior in ITEM_PRIORS for prior in self.priors)

    @property
    def next_item_weight(self) -> float:
        """The weight of the backbone's plain next-item loss next to the heads' (see ``next_item_loss``)."""
        if self.backbone_from is not None:
            return 0.0  # a frozen backbone: the next-item loss would train nothing
        if self.next_item_loss is not None:
            return self.next_item_loss
        return 1.0 if self.in_group or not self.end_to_end else 0.0

    @property
    def merged_weight(self) -> float:
        """The weight of the merged loss (see ``merged_loss``)."""
        if self.merged_loss is not None:
            return self.merged_loss
        return 1.0 if self.in_group else 0.0

    @property
    def merge_rule(self) -> Merge:
        """How head scores combine unless a request says otherwise (see ``merge``)."""
        if self.merge is not None:
            return self.merge
        return "sum" if self.merged_weight else "max"


def build_priors(
    config: HeadsConfig, dataset: Dataset, train: Sequences, seed: int = 0, new: bool = True
) -> list[Prior]:
    """The priors ``config.priors`` names, in order. For a ``new`` model (not a saved run's, which loads as
    it was trained), priors that would make heads that cannot learn, or too many, are refused."""
    priors = []
    for kind in config.priors:
        if kind == "taxonomy":
            priors.append(Prior.taxonomy(dataset, train, config.max_values, config.coarser_categories))
        elif kind == "clusters":
            priors.append(Prior.clusters(dataset, train, config.clusters, seed))
        elif kind == "events":
            priors.append(Prior.events(dataset, config.loved_rating))
        else:
            priors.append(Prior.horizon(config.pred_len, config.segments))
    if new:
        _check_priors(config, dataset, train, priors)
    return priors


def _check_priors(config: HeadsConfig, dataset: Dataset, train: Sequences, priors: list[Prior]) -> None:
    known = set(dataset.item_categories()["categories"].unique().to_list())
    for category in config.coarser_categories or {}:  # a misspelt key leaves its category as it is, unsaid
        if category not in known:
            raise ConfigError(
                f"heads.coarser_categories: {category!r} is no category of {dataset.card.source}"
                f"{did_you_mean(category, sorted(known))}."
            )
    for prior in priors:
        if len(prior.names) < 2:  # one head for every item: the backbone again, at twice the cost
            raise ConfigError(
                f"the {prior.kind} prior gives a single value on {dataset.card.source} ({prior.names[0]}); "
                "it needs two or more to be worth heads."
            )
        untrained = prior.untrained(train) if prior.kind == "events" else []
        if untrained:
            raise ConfigError(
                f"the events prior: no training target of {dataset.card.source} is {', '.join(untrained)} "
                f"(validation and test targets alone, or no rating at heads.loved_rating "
                f"{config.loved_rating:g}), so that head would never learn; keep those events out "
                "(data.filters.events) or use a split that trains on them."
            )
    sizes = [len(prior.names) for prior in priors]
    additive = config.composition == "additive"
    n_heads = sum(sizes) if additive else math.prod(sizes)
    if n_heads > MAX_HEADS:  # each head scores the catalogue: memory and time grow with their number
        pairs = " × ".join(map(str, sizes)) + " = " if len(sizes) > 1 and not additive else ""
        raise ConfigError(
            f"heads.priors {', '.join(config.priors)} give {pairs}{n_heads} heads, over {MAX_HEADS}; "
            "keep fewer values (heads.max_values, heads.clusters, heads.segments) or compose additively."
        )


#: The most heads a model may have: each scores the whole catalogue, in training and in ranking.
MAX_HEADS = 256

#: The largest weight a request may give: four of them (a head's, two prior values', ``unexplored``)
#: multiply into one float32 weight, and 1e9 ** 4 stays below float32's largest number (3.4e38).
MAX_WEIGHT = 1e9


class Steering(Settings):
    """Request-time weights on the heads: an item's score from head ``c`` gains ``log w_c``.

    ``heads`` weighs heads by name, ``values`` weighs every head that carries a prior value (weights
    multiply), ``only`` keeps just the heads named or carrying a value named (all others get 0),
    ``unexplored`` weighs, for each user, the heads whose category that user's history has not met.
    Unnamed heads weigh 1, except the backbone's own head ``"next"``, which weighs the run's
    ``heads.backbone_weight`` (1 when ``only`` names it).
    """

    heads: dict[str, float] = Field({}, description="Weight per head name (0 to 1e9).")
    values: dict[str, float] = Field({}, description="Weight per prior value, e.g. a category (0 to 1e9).")
    only: list[str] | None = Field(
        None, min_length=1, description="Heads or prior values to keep (at least one); None: all."
    )
    unexplored: float = Field(
        1.0,
        ge=0,
        le=MAX_WEIGHT,
        description="Extra weight of the heads of categories (item-prior values) that no event of the "
        "user's whole history has: > 1 leans each list towards what is new to its user.",
    )
    merge: Merge | None = Field(None, description="How heads combine; None: the run's.")

    @field_validator("heads", "values")
    @classmethod
    def _in_range(cls, weights: dict[str, float]) -> dict[str, float]:
        wrong = {name: weight for name, weight in weights.items() if not 0 <= weight <= MAX_WEIGHT}
        if wrong:
            raise ValueError(
                f"weights must be from 0 to {MAX_WEIGHT:g} ('only' keeps just some heads), got {wrong}."
            )
        return weights


class PriorHeads(nn.Module):
    """The heads of one or two priors, their blocks and the learned inverse temperature they share."""

    def __init__(self, dim: int, n_items: int, priors: list[Prior], config: HeadsConfig) -> None:
        super().__init__()
        self.priors = priors
        self.config = config
        # (H, T): head h carries value values[h, t] of prior t, -1 where it ignores prior t (additive);
        # a buffer, so that it moves with the model to its device
        self.register_buffer("values", _layout(priors, config.composition), persistent=False)
        self.names = [
            " · ".join(prior.names[v] for prior, v in zip(priors, row, strict=True) if v >= 0)
            for row in self.values.tolist()
        ]
        self.hierarchical = len(priors) == 2 and config.composition == "hierarchical"
        n_blocks = len(priors[0].names) + 1 if self.hierarchical else len(self.names)
        # (n, D, D) and (n, D): all blocks in one batched matmul; zero weights start every head at identity
        self.weight = nn.Parameter(torch.zeros(n_blocks, dim, dim))
        self.bias = nn.Parameter(torch.zeros(n_blocks, dim))
        # hierarchical: the learned embedding of each value of the second prior, added before the top block
        self.value_embedding = (
            nn.Parameter(torch.zeros(len(priors[1].names), dim)) if self.hierarchical else None
        )
        self.log_scale = nn.Parameter(torch.tensor(math.log(1 / 0.05))) if config.cosine else None
        # (n_items + 1, H): the items each head may give (row 0, the padding item, none)
        allowed = torch.ones(n_items, len(self.names), dtype=torch.bool)
        for t, prior in enumerate(priors):
            if prior.membership is not None:
                any_value = torch.ones(n_items, 1, dtype=torch.bool)  # column -1: the head ignores prior t
                allowed &= torch.cat([prior.membership, any_value], dim=1)[:, self.values[:, t]]
        self.register_buffer("allowed", F.pad(allowed, (0, 0, 1, 0)), persistent=False)
        # (H,): the heads that carry a value of an item prior (a category, a cluster)
        item_prior = torch.tensor([prior.membership is not None for prior in priors])
        self.register_buffer("categorised", ((self.values >= 0) & item_prior).any(dim=1), persistent=False)

    @property
    def horizon(self) -> int:
        return self.config.horizon

    def scale(self) -> torch.Tensor | float:
        """The inverse temperature multiplying similarities (1 with dot products)."""
        if self.log_scale is None:
            return 1.0
        # the cap (100) keeps the softmax from collapsing; it holds the parameter itself, since a clamp of
        # the output passes no gradient above it, and a scale pushed past the cap would stay there for good
        with torch.no_grad():
            self.log_scale.clamp_(max=math.log(100.0))
        return self.log_scale.exp()

    def items(self, table: torch.Tensor) -> torch.Tensor:
        """The model's item table as the heads compare against it (unit rows with cosine similarity)."""
        return F.normalize(table, dim=-1) if self.config.cosine else table

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(..., D)`` hidden states -> ``(..., H, D)`` queries, one per head (unit length with cosine)."""
        if not self.hierarchical:
            return self._finish(_residual(hidden.unsqueeze(-2), self.weight, self.bias))
        outer = _residual(hidden.unsqueeze(-2), self.weight[:-1], self.bias[:-1])  # (..., A, D)
        assert self.value_embedding is not None
        first, second = self.values[:, 0], self.values[:, 1]
        inner = outer[..., first, :] + self.value_embedding[second]  # (..., H, D)
        return self._finish(_residual(inner, self.weight[-1], self.bias[-1]))

    def query(self, hidden: torch.Tensor, head: int) -> torch.Tensor:
        """``(P, D)`` -> ``(P, D)``: one head's queries, for training on that head's targets only."""
        if not self.hierarchical:
            return self._finish(_residual(hidden, self.weight[head], self.bias[head]))
        assert self.value_embedding is not None
        first, second = self.values[head].tolist()
        outer = _residual(hidden, self.weight[first], self.bias[first])
        return self._finish(_residual(outer + self.value_embedding[second], self.weight[-1], self.bias[-1]))

    def group(self, head: int) -> torch.Tensor:
        """Model indices (ascending) of the items ``head`` may give."""
        return self.allowed[:, head].nonzero().squeeze(1)

    def _finish(self, queries: torch.Tensor) -> torch.Tensor:
        return F.normalize(queries, dim=-1) if self.config.cosine else queries

    def trains(self, targets: torch.Tensor, target_rows: torch.Tensor | None) -> torch.Tensor:
        """``(P, K, H)`` bool: which heads each target trains (it carries every value of the head)."""
        trains = (targets != PAD)[..., None].expand(*targets.shape, len(self.names))
        for t, prior in enumerate(self.priors):
            values = prior.values(targets, target_rows)
            values = torch.cat([values, torch.ones_like(values[..., :1])], dim=-1)  # -1: any value
            trains = trains & values[..., self.values[:, t]]
        return trains

    def score(
        self,
        hidden: torch.Tensor,
        items: torch.Tensor,
        head_weights: torch.Tensor | None = None,
        merge: Merge | None = None,
        own_scores: torch.Tensor | None = None,
        backbone_weight: float = 0.0,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores of every dataset item and the head each score comes from.

        ``hidden (B, D)``, ``items (n_items + 1, D)`` (row 0 padding), ``head_weights`` >= 0, ``(H,)`` for
        every user or ``(B, H)`` for each (:meth:`head_weights`), or None -> ``scores (B, n_items)`` and
        ``head (B, n_items)`` int64. An item no head may give (all its heads weighted 0) scores ``-inf``.

        ``merge`` (default: the config's) ``"max"`` gives an item its best head's score; ``"sum"``
        ``log sum_c w_c exp(score_c)`` over its heads; ``"mix"`` the log of the mixture
        ``sum_c w_c P(c | u) P_c(i | u)``, where ``P_c`` is head c's softmax over its items and
        ``P(c | u)`` the backbone's own probability (``own_scores (B, n_items)``, its next-item logits) of
        head c's items. The head reported is the largest term. ``backbone_weight > 0`` mixes in the
        backbone's own distribution, reported as head ``H`` (see the module docstring).
        """
        merge = merge or self.config.merge_rule
        if (merge == "mix" or backbone_weight > 0) and own_scores is None:
            raise ValueError("merge='mix' or a backbone weight needs the backbone's own next-item scores")
        queries, items = self(hidden), self.items(items[1:])  # (B, H, D), (n_items, D)
        # (H,) or (B, H): a head's column is then a scalar or one weight per user, the scores' columns
        log_weights = (
            hidden.new_zeros(len(self.names)) if head_weights is None else torch.log(head_weights.to(hidden))
        )
        # item-major (n_items, B): a head's items are then whole rows, gathered and written back in
        # contiguous runs (its columns of a (B, n_items) table would be B scattered runs each)
        own_log_probs = (
            torch.log_softmax(own_scores, dim=1).T.contiguous() if own_scores is not None else None
        )
        best = hidden.new_full((len(items), len(hidden)), float("-inf"))
        total = best.clone() if merge != "max" else None  # "max" needs no sum
        best_head = torch.zeros(best.shape, dtype=torch.int64, device=hidden.device)
        # head by head, so memory stays (n_items, B) however many heads there are, and each head scores
        # only the items it may give: with disjoint categories all heads together cost one head's work
        dropped = (
            [False] * len(self.names)
            if head_weights is None
            else (head_weights.reshape(-1, len(self.names)) == 0).all(dim=0).tolist()
        )
        for head in range(len(self.names)):
            if dropped[head]:
                continue  # a dropped head adds nothing to the sum and never wins the max
            group = self.group(head) - 1  # rows of the item-major scores
            rows = slice(None) if len(group) == len(items) else group
            logits = self.scale() * items[rows] @ queries[:, head].T  # (group size, B)
            if merge == "mix":
                assert own_log_probs is not None
                head_log_prob = torch.logsumexp(own_log_probs[rows], dim=0, keepdim=True)
                logits = head_log_prob + torch.log_softmax(logits, dim=0)
            logits = logits + log_weights[..., head]
            if total is not None:
                total[rows] = torch.logaddexp(total[rows], logits)
            best_so_far = best[rows]
            better = logits > best_so_far
            best[rows] = torch.where(better, logits, best_so_far)
            best_head[rows] = torch.where(better, head, best_head[rows])
        merged = best if total is None else total
        if backbone_weight > 0:
            assert own_log_probs is not None
            own = own_log_probs + math.log(backbone_weight)
            if all(dropped):
                merged, best_head = own, torch.full_like(best_head, len(self.names))
            else:
                # the heads' list as a distribution over the catalogue, log P_heads(i | u); a user whose
                # heads are all weighed 0 (steering per user) has none, and gets the backbone's alone
                normaliser = torch.logsumexp(merged, dim=0, keepdim=True)
                heads_log_probs = torch.where(normaliser.isinf(), float("-inf"), merged - normaliser)
                best_head = torch.where(own > heads_log_probs, len(self.names), best_head)
                merged = torch.logaddexp(heads_log_probs, own)
        return merged.T.contiguous(), best_head.T.contiguous()

    def head_weights(self, steering: Steering, histories: Sequences | None = None) -> torch.Tensor:
        """``(H,)`` weights from a :class:`Steering`, or ``(B, H)``, one row per history, when it weighs
        the heads a user has not met (``unexplored`` != 1) and the users' whole ``histories`` (not only
        the events the model reads) are given. Unknown head or value names are a ConfigError."""
        weights = self._weights(steering)
        if histories is None or steering.unexplored == 1:
            return weights
        return weights * torch.where(self.unexplored(histories).cpu(), steering.unexplored, 1.0)

    def unexplored(self, histories: Sequences) -> torch.Tensor:
        """``(B, H)`` bool, one row per history: the heads that carry a category (a value of an item
        prior) that no event of it has; a head of no item prior (a horizon segment) is never unexplored."""
        met = histories.rows_with(self.allowed[1:])  # dataset items: row 0 of allowed is padding
        return ~met & self.categorised

    def _weights(self, steering: Steering) -> torch.Tensor:
        values = {name for prior in self.priors for name in prior.names}
        for field, known, asked in (
            ("heads", [*self.names, NEXT_ITEM_HEAD], steering.heads),
            ("values", values, steering.values),
            ("only", {*self.names, NEXT_ITEM_HEAD} | values, steering.only or []),
        ):
            for name in asked:
                if name not in known:
                    raise ConfigError(
                        f"steering {field}: no head or prior value '{name}'{did_you_mean(name, known)}; "
                        f"heads: {', '.join(self.names)}."
                    )
        weights = torch.ones(len(self.names))
        for h, row in enumerate(self.values.tolist()):
            carried = {prior.names[v] for prior, v in zip(self.priors, row, strict=True) if v >= 0}
            weights[h] *= steering.heads.get(self.names[h], 1.0)
            for value in carried:
                weights[h] *= steering.values.get(value, 1.0)
            if steering.only is not None and not ({self.names[h]} | carried) & set(steering.only):
                weights[h] = 0.0
        if not weights.any() and not self.backbone_weight(steering):
            raise ConfigError("steering weighs every head 0 (the backbone's 'next' too): nothing would rank.")
        return weights

    def backbone_weight(self, steering: Steering) -> float:
        """The weight of the backbone's own head ``"next"`` under ``steering`` (see :class:`Steering`)."""
        if steering.only is None:
            return steering.heads.get(NEXT_ITEM_HEAD, self.config.backbone_weight)
        if NEXT_ITEM_HEAD not in steering.only:
            return 0.0
        return steering.heads.get(NEXT_ITEM_HEAD, self.config.backbone_weight or 1.0)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.parameters())


def _residual(hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The Medusa block ``x + SiLU(W x + b)``; ``weight (..., D, D)`` and ``bias (..., D)`` broadcast."""
    return hidden + F.silu(torch.einsum("...d,...ed->...e", hidden, weight) + bias)


def _layout(priors: list[Prior], composition: str) -> torch.Tensor:
    """``(H, T)`` value indices of every head (-1: the head ignores that prior)."""
    if len(priors) == 1:
        return torch.arange(len(priors[0].names))[:, None]
    a, b = len(priors[0].names), len(priors[1].names)
    if composition == "additive":
        first = torch.stack([torch.arange(a), torch.full((a,), -1)], dim=1)
        second = torch.stack([torch.full((b,), -1), torch.arange(b)], dim=1)
        return torch.cat([first, second])
    return torch.cartesian_prod(torch.arange(a), torch.arange(b))
