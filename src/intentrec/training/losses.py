"""Next-item training losses over the positions of a batch.

All take ``hidden (N, D)`` (one row per supervised position), ``targets (N,)`` model item indices (never
padding) and the output item table ``items (n_items + 1, D)`` whose row 0 is padding.

``softmax``          full cross-entropy over the whole catalogue (Klenitskiy & Vasilev, RecSys 2023),
                     optionally label-smoothed: ``label_smoothing`` of the target's mass spread evenly.
``sampled_softmax``  cross-entropy of the target against negatives drawn uniformly, either shared by the
                     batch (cheap: one (N, M) matmul) or drawn for every position (as HSTU's code does:
                     far more distinct negatives per step); a negative equal to the target (an
                     "accidental hit") is masked out.
``bce``              the original SASRec loss: binary cross-entropy, one uniform negative per position.

Every loss divides its logits by ``temperature``; cosine similarity applies when the model normalises its
vectors (see SequentialModel).
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from intentrec.settings import Settings


class LossConfig(Settings):
    """Which training objective, and its sampling and scaling."""

    kind: Literal["softmax", "sampled_softmax", "bce"] = "softmax"
    negatives: int = Field(1024, ge=1, description="'sampled_softmax': uniform negatives per position.")
    shared_negatives: bool = Field(
        True, description="'sampled_softmax': one draw of negatives for the whole batch, or one per position."
    )
    temperature: float = Field(1.0, gt=0, description="Logits are divided by this.")
    normalize: bool = Field(False, description="L2-normalise user and item vectors (cosine scores).")
    label_smoothing: float = Field(
        0.0, ge=0, lt=1, description="'softmax': share of the target's probability spread over all items."
    )

    @model_validator(mode="after")
    def _smoothing_needs_the_full_softmax(self) -> LossConfig:
        if self.label_smoothing and self.kind != "softmax":
            raise ValueError(
                f"label_smoothing spreads over every item: it needs kind 'softmax', not {self.kind!r}"
            )
        return self


def next_item_loss(
    config: LossConfig, hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor
) -> torch.Tensor:
    """Mean loss over the ``N`` supervised positions, as ``config.kind`` says."""
    if config.kind == "softmax":
        return full_softmax_loss(hidden, targets, items, config.temperature, config.label_smoothing)
    if config.kind == "sampled_softmax":
        return sampled_softmax_loss(
            hidden, targets, items, config.negatives, config.temperature, config.shared_negatives
        )
    return binary_cross_entropy_loss(hidden, targets, items, config.temperature)


def full_softmax_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    temperature: float,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    # dividing the (N, D) queries is cheaper than dividing the (N, n_items) logits
    logits = (hidden / temperature) @ items[1:].T  # (N, n_items): the padding row is never an answer
    return F.cross_entropy(logits, targets - 1, label_smoothing=label_smoothing)


def sampled_softmax_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    items: torch.Tensor,
    n_negatives: int,
    temperature: float,
    shared: bool = True,
) -> torch.Tensor:
    hidden = hidden / temperature
    positive_logits = (hidden * items[targets]).sum(-1, keepdim=True)  # (N, 1)
    if shared:
        negatives = torch.randint(1, items.shape[0], (1, n_negatives), device=hidden.device)  # (1, M)
        negative_logits = hidden @ items[negatives[0]].T  # (N, M)
    else:
        negatives = torch.randint(1, items.shape[0], (len(targets), n_negatives), device=hidden.device)
        negative_logits = torch.einsum("nd,nmd->nm", hidden, items[negatives])  # (N, M)
    accidental_hit = negatives == targets[:, None]
    negative_logits = negative_logits.masked_fill(accidental_hit, float("-inf"))
    logits = torch.cat([positive_logits, negative_logits], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(targets))  # the positive is class 0


def binary_cross_entropy_loss(
    hidden: torch.Tensor, targets: torch.Tensor, items: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    negatives = torch.randint(1, items.shape[0], targets.shape, device=hidden.device)
    hidden = hidden / temperature
    positive_logits = (hidden * items[targets]).sum(-1)
    negative_logits = (hidden * items[negatives]).sum(-1)
    keep = (negatives != targets).float()  # an accidental hit is not a negative, nor counted in the mean
    positive_loss = F.binary_cross_entropy_with_logits(positive_logits, torch.ones_like(positive_logits))
    negative_loss = F.binary_cross_entropy_with_logits(
        negative_logits, torch.zeros_like(negative_logits), weight=keep, reduction="sum"
    ) / keep.sum().clamp(min=1)
    return positive_loss + negative_loss
