"""GRU4Rec: a recurrent network over the history (Hidasi et al., ICLR 2016), in the strong modern setup of
Hidasi & Czapp (RecSys 2023: "The Effect of Third Party Implementations on Reproducibility").

    x_t = Dropout(e_t · √D)                                     item embedding of event t
    h_t = GRU(x_t, h_{t-1}),  h_0 = 0                           ``n_layers`` stacked GRU layers of width D
    out_t = Dropout(h_t)                                        one state per position, causal by construction

As in the authors' best configurations, the input embedding is the output item table ("constrained
embedding": the model around the backbone ties them), so the GRU is as wide as the embedding, one layer is
the default, and dropout acts on the embedding and on each layer's output; the losses are chosen in the
loss section (full softmax cross-entropy by default, the limit of their sampled cross-entropy).

Histories are left-padded (real events right-aligned), but a recurrence must start at the first real
event: padding steps would move ``h`` away from 0. So each row is shifted left, run as a packed sequence
(no work spent on padding) and shifted back; padded positions come out as zeros. The √D scaling gives
inputs of unit scale with the model's item-table initialisation, as for the attention backbones.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from pydantic import Field
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from intentrec.models.backbone import Backbone
from intentrec.settings import Settings


class GRU4RecConfig(Settings):
    """Size and regularisation of a GRU4Rec backbone."""

    name: Literal["gru4rec"] = "gru4rec"
    dim: int = Field(192, ge=1, description="Embedding size D, also the GRU's hidden size.")
    n_layers: int = Field(1, ge=1, description="Stacked GRU layers.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on the embedding and each layer's output.")
    max_len: int = Field(50, ge=1, description="Most recent events the model reads.")


def shift_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row ``b`` of ``x (B, L, ...)`` rotated left by ``shift[b]``:
    ``out[b, p] = x[b, (p + shift[b]) % L]``.
    """
    length = x.shape[1]
    index = (torch.arange(length, device=x.device)[None, :] + shift[:, None]) % length  # (B, L)
    return x.gather(1, index.view(*index.shape, *[1] * (x.dim() - 2)).expand_as(x))


class GRU4Rec(Backbone):
    def __init__(self, config: GRU4RecConfig):
        super().__init__()
        self.dim = config.dim
        self.dropout = nn.Dropout(config.dropout)
        # nn.GRU drops out between stacked layers; the last layer's output gets self.dropout
        between = config.dropout if config.n_layers > 1 else 0.0
        self.gru = nn.GRU(config.dim, config.dim, config.n_layers, batch_first=True, dropout=between)

    def forward(
        self,
        item_embeddings: torch.Tensor,
        timestamps: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        request_times: torch.Tensor | None = None,  # reads no time
    ) -> torch.Tensor:
        length = mask.shape[1]
        if len(mask) == 0:  # no histories: packing rejects an empty batch
            return item_embeddings.new_zeros(0, 1 if last_only else length, self.dim)
        lengths = mask.sum(1)
        x = self.dropout(item_embeddings * math.sqrt(self.dim))
        # left-align the real events, so every row's recurrence starts at its first event
        x = shift_rows(x, length - lengths)
        # an empty history still gets one (ignored) step: packing rejects length 0
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        hidden, _ = self.gru(packed)
        hidden, _ = pad_packed_sequence(hidden, batch_first=True, total_length=length)  # zeros after the end
        # right-align again: position p of a row of n events reads left-aligned p - (L - n) ≡ p + n (mod L)
        hidden = shift_rows(hidden, lengths)
        hidden = self.dropout(hidden) * mask[..., None]
        return hidden[:, -1:] if last_only else hidden
