"""A sequential recommender as a torch module: item embeddings + backbone, scored against every item.

    history (B, L) -> item embeddings (B, L, D) -> backbone -> hidden (B, L, D)
    score(user at position t, item i) = <hidden[t], e_i>          (cosine when ``normalize``)

With prior heads (:mod:`intentrec.models.heads`) the hidden state is read by one adapter per prior value,
and the heads' scores of an item are merged into one as ``heads.merge`` says (its best head's, their sum or a
mixture), with the backbone's own distribution weighed in by ``heads.backbone_weight`` (``PriorHeads.score``).

The item embedding table is shared by the input and the output (weight tying, as in SASRec), row 0 is the
padding item, and dataset item ``i`` is row ``i + 1``.

Outside training the backbone may run in bfloat16 (``inference_dtype``, set by ``Recommender.load``): its
matrix products then move half the bytes and, on hardware with bfloat16 arithmetic, run faster (a whole
evaluation pass 1.2-1.6x on an avx512_bf16 CPU, BENCHMARKS.md). Its output is cast back to float32 before
items are scored, so the ranking's last step keeps full precision.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from intentrec.models.backbone import Backbone
from intentrec.models.heads import Merge, PriorHeads

Precision = Literal["float32", "bfloat16"]


class SequentialModel(nn.Module):
    def __init__(
        self,
        backbone: Backbone,
        n_items: int,
        normalize: bool = False,
        heads: PriorHeads | None = None,
        temperature: float = 1.0,
    ):
        super().__init__()
        self.backbone = backbone
        self.heads = heads
        self.normalize = normalize
        # the training loss's: the backbone's own probabilities, where heads mix them in, are at this scale
        self.temperature = temperature
        self.inference_dtype: Precision = "float32"  # the backbone's arithmetic when not training
        self.item_embedding = nn.Embedding(n_items + 1, backbone.dim, padding_idx=0)
        std = backbone.item_init_std
        if std is None:  # unit-scale inputs after the backbone's sqrt(D) scaling
            nn.init.normal_(self.item_embedding.weight, std=backbone.dim**-0.5)
        else:
            nn.init.normal_(self.item_embedding.weight, std=std)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor,
        last_only: bool = False,
        request_times: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``(B, L)`` model item indices (0 = padding) and timestamps -> hidden states ``(B, L, D)``, or
        with ``last_only`` the state after the most recent event ``(B, D)``. ``request_times (B,)``: when
        the item after each history is asked for; needed when ``backbone.reads_request_time``."""
        device = self.item_embedding.weight.device  # callers pass CPU tensors; the model may be elsewhere
        items, timestamps = items.to(device), timestamps.to(device)
        if request_times is not None:
            request_times = request_times.to(device)
        mask = items != 0
        # in training, the caller's autocast (train.precision) decides; it must not be switched off here
        low_precision = not self.training and self.inference_dtype == "bfloat16"
        with torch.autocast(device.type, dtype=torch.bfloat16) if low_precision else nullcontext():
            hidden = self.backbone(
                self.item_embedding(items), timestamps, mask, last_only=last_only, request_times=request_times
            )
        hidden = hidden.float()
        if last_only:
            hidden = hidden[:, -1]
        return F.normalize(hidden, dim=-1) if self.normalize else hidden

    def output_embeddings(self) -> torch.Tensor:
        """``(n_items + 1, D)`` item vectors used for scoring (row 0 is padding)."""
        weight = self.item_embedding.weight
        return F.normalize(weight, dim=-1) if self.normalize else weight

    @torch.no_grad()
    def score_last(
        self,
        items: torch.Tensor,
        timestamps: torch.Tensor,
        head_weights: torch.Tensor | None = None,
        merge: Merge | None = None,
        backbone_weight: float | None = None,
        request_times: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores ``(B, n_items)`` of every dataset item after the most recent event of each history, and
        the prior head each score comes from ``(B, n_items)`` int64 (None without prior heads).
        ``request_times (B,)`` as in :meth:`forward`.

        With prior heads the heads' scores merge as :meth:`PriorHeads.score` says (``head_weights``,
        ``(H,)`` or ``(B, H)``, and ``backbone_weight``, default the config's, steer them; see
        :mod:`intentrec.models.heads`).
        """
        return self.score_states(
            self.forward(items, timestamps, last_only=True, request_times=request_times),
            head_weights,
            merge,
            backbone_weight,
        )

    @torch.no_grad()
    def score_states(
        self,
        user: torch.Tensor,
        head_weights: torch.Tensor | None = None,
        merge: Merge | None = None,
        backbone_weight: float | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`score_last` from the states ``(B, D)`` that ``forward(..., last_only=True)`` gives."""
        if self.heads is None:
            return user @ self.output_embeddings()[1:].T, None
        if backbone_weight is None:
            backbone_weight = self.heads.config.backbone_weight
        # the backbone's own probabilities weigh the heads in a mixture, or join them; else unread
        mixing = (merge or self.heads.config.merge_rule) == "mix" or backbone_weight > 0
        own = (user / self.temperature) @ self.output_embeddings()[1:].T if mixing else None
        return self.heads.score(user, self.item_embedding.weight, head_weights, merge, own, backbone_weight)
