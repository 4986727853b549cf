"""The interface every sequence backbone implements (SASRec, HSTU, GRU4Rec, FuXi-α).

A backbone turns a left-padded batch of histories into one hidden state per position:

    item_embeddings (B, L, D), timestamps (B, L), mask (B, L) bool  ->  hidden (B, L, D)
                                                        (or (B, 1, D): the last position only)

Position ``t`` may only see events ``<= t`` (causal), so the hidden state at ``t`` predicts the event after
``t``, and the state at ``L - 1`` represents the whole history. The item embedding table is owned by the
model around the backbone (it is shared with the output scoring), which is why embeddings, not ids, go in.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn


class Backbone(nn.Module, ABC):
    """Base class: subclasses set ``dim`` and implement :meth:`forward`."""

    dim: int
    #: True when :meth:`forward` needs ``request_times`` (a time bias measured from the request)
    reads_request_time: bool = False
    #: The item embeddings' initial std (normal), where the backbone's reference
    #: code sets one; None: 1/sqrt(D), unit-scale inputs after the usual sqrt(D) scaling.
    item_init_std: float | None = None

    @abstractmethod
    def forward(
        self,
        item_embeddings: torch.Tensor,
        timestamps: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        request_times: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, L, D)`` embeddings, ``(B, L)`` int64 timestamps, ``(B, L)`` bool mask -> ``(B, L, D)``.

        ``last_only``: only the state after the last event, ``(B, 1, D)``, which is all that ranking
        needs; a backbone skips the work the other positions would cost where it can. ``request_times
        (B,)``: when the item after each history is asked for (read only if ``reads_request_time``).
        """


def causal_attention_mask(mask: torch.Tensor) -> torch.Tensor:
    """``(B, 1, L, L)`` bool: query ``i`` may attend key ``j`` when ``j <= i`` and ``j`` is a real event.

    The diagonal is always allowed so that padded queries, whose keys are all padding, still have one key
    and never produce NaN; their outputs are ignored downstream.
    """
    length = mask.shape[1]
    causal = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    allowed = causal[None] & mask[:, None, :]
    allowed |= torch.eye(length, dtype=torch.bool, device=mask.device)[None]
    return allowed[:, None]


def reverse_positions(mask: torch.Tensor) -> torch.Tensor:
    """``(B, L)`` distance of each position from the most recent event (0 = most recent).

    With right-aligned histories this is exactly SASRec's learned absolute position over its fixed
    window, but it stays meaningful when the batch width varies.
    """
    length = mask.shape[1]
    return torch.arange(length - 1, -1, -1, device=mask.device).expand_as(mask)
