"""FuXi-α (Ye et al., arXiv 2502.03036: "Scaling Recommendation Model with Feature Interaction Enhanced
Transformer").

An HSTU-style block whose attention keeps semantics, order and time apart. On ``X (B, L, D)`` with H heads,
the adaptive multi-channel self-attention (AMS) computes

    U, V, Q, K = split(SiLU(RMSNorm(X) W_uvqk))           per head: U (c·dv), V (dv), Q, K (dqk)
    semantic   a_h(i, j) = SiLU(q_i · k_j) / n             pointwise as in HSTU, n = max_len
    positional a_p(i, j) = w_pos[i - j]                    a learned map over offsets, shared by the heads
    temporal   a_t(i, j) = w_time[bucket(t_i - t_j)]       a learned map over log-spaced time gaps
    H          = U ⊙ RMSNorm([A_h V, A_p V, A_t V])        the c = 3 channels concatenated, all causal

and the multi-stage feed-forward network (MFFN) mixes the channels back and adds an FFN:

    O = X + W_o Dropout(H)                                 stage 1: c·H·dv -> D, residual to the input
    Y = O + W_2 (SiLU(W_1 Z) ⊙ W_3 Z)                      stage 2: SwiGLU on Z = Dropout(RMSNorm(O))

RMSNorms have no learned scale (eps 1e-6), ``W_uvqk ~ N(0, 0.02²)``, the channel maps ``~ N(0, 0.02²)`` and
the MFFN weights are Xavier-initialised, as in the authors' code (USTC-StarTeam/FuXi-alpha), which also
sets the FFN width to D and gives every block its own positional and temporal maps. The offsets and
buckets are the ones HSTU uses (``models/relative.py``). Inputs are item embeddings · √D plus a learned
position embedding, with dropout, initialised as HSTU's (items N(0, 0.02²),
positions Xavier-normal, as both authors' codes do); there is no final norm (the model around the backbone
L2-normalises when ``loss.normalize`` asks for it). It trains with the library's defaults, for the reason
given in hstu.py.

Details taken from the authors' code, and the choices that are ours:
- The positional and temporal weights enter raw, without SiLU, the 1/n of the semantic channel or a
  softmax; the semantic channel has no relative bias of its own; all three channels share V; the norms
  are RMSNorms. All as in the authors' code.
- The channels are concatenated channel by channel, the authors' code head by head: the same model up to
  a fixed permutation of the learned columns of U and W_o.
- Like our HSTU, the temporal map at query ``i`` uses the gap to ``t_i`` by default; ``query_time =
  "request"`` uses the time the prediction is asked for, ``t_{i+1}``, as the authors do
  (``models/relative.py``).
- For order-only logs (``use_time=False``) the temporal channel is left out (c = 2), rather than fed
  meaningless gaps.
- ``recurrent_depth = k`` runs the whole stack k times on all tokens with the same weights (the depth
  recurrence of LARES, Liu et al. 2025, without its input re-injection, noisy start or RL training).
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from intentrec.models.backbone import Backbone, causal_attention_mask, reverse_positions
from intentrec.models.relative import (
    QueryTime,
    RelativeAttentionBias,
    relative_offsets,
    request_queries,
    time_buckets,
)
from intentrec.settings import Settings

_EPS = 1e-6


class FuXiConfig(Settings):
    """Size and regularisation of a FuXi-α backbone; defaults follow the authors' MovieLens setup."""

    name: Literal["fuxi"] = "fuxi"
    dim: int = Field(64, ge=1, description="Embedding size D.")
    n_blocks: int = Field(2, ge=1, description="Number of FuXi blocks (AMS + MFFN).")
    n_heads: int = Field(1, ge=1, description="Heads of the semantic channel.")
    attention_dim: int | None = Field(None, ge=1, description="dqk per head; None: dim // n_heads.")
    linear_dim: int | None = Field(None, ge=1, description="dv per head and channel; None: dim // n_heads.")
    ffn_dim: int | None = Field(None, ge=1, description="Hidden width of the SwiGLU stage; None: dim.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout on the input and inside the MFFN.")
    max_len: int = Field(200, ge=1, description="Most recent events the model reads; the n of SiLU(.)/n.")
    n_time_buckets: int = Field(128, ge=1, description="Log-spaced buckets of time gaps, temporal channel.")
    query_time: QueryTime = Field(
        "last_event", description="Time gaps from each query's own event, or from the time of the request."
    )
    recurrent_depth: int = Field(1, ge=1, description="Passes through the block stack, sharing weights.")


class FuXiBlock(nn.Module):
    def __init__(self, config: FuXiConfig, use_time: bool):
        super().__init__()
        dim, heads, ffn_dim = config.dim, config.n_heads, config.ffn_dim or config.dim
        self.n_heads = heads
        self.attention_dim = attention_dim = config.attention_dim or max(1, dim // heads)
        self.linear_dim = linear_dim = config.linear_dim or max(1, dim // heads)
        self.n_channels = 3 if use_time else 2
        width = heads * (self.n_channels * linear_dim + linear_dim + 2 * attention_dim)  # U, V, Q, K
        self.uvqk = nn.Parameter(torch.empty(dim, width).normal_(0, 0.02))
        # the positional and temporal channels
        self.maps = RelativeAttentionBias(config.max_len, config.n_time_buckets, use_time)
        self.out = nn.Linear(self.n_channels * heads * linear_dim, dim)  # MFFN stage 1
        self.ffn_gate = nn.Linear(dim, ffn_dim, bias=False)  # MFFN stage 2: W_1, W_3, W_2
        self.ffn_up = nn.Linear(dim, ffn_dim, bias=False)
        self.ffn_down = nn.Linear(ffn_dim, dim, bias=False)
        for linear in (self.out, self.ffn_gate, self.ffn_up, self.ffn_down):
            nn.init.xavier_uniform_(linear.weight)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        offsets: torch.Tensor,
        buckets: torch.Tensor | None,
        allowed: torch.Tensor,
        n: int,
    ) -> torch.Tensor:
        """``x (B, L, D)``, ``offsets (L, L)``, ``buckets (B, L, L)``, ``allowed (B, 1, L, L)`` 0/1."""
        batch, length, dim = x.shape
        heads, dv, dqk = self.n_heads, self.linear_dim, self.attention_dim
        projected = F.silu(F.rms_norm(x, (dim,), eps=_EPS) @ self.uvqk)
        u, v, q, k = projected.split([self.n_channels * heads * dv, heads * dv, heads * dqk, heads * dqk], -1)
        q = q.view(batch, length, heads, dqk).transpose(1, 2)  # (B, H, L, dqk)
        k = k.view(batch, length, heads, dqk).transpose(1, 2)
        v = v.view(batch, length, heads, dv).transpose(1, 2)  # (B, H, L, dv)

        # one (B, H|1, L, L) attention map per channel; the positional and temporal maps serve every head
        maps = [F.silu(q @ k.transpose(-1, -2)) / n, self.maps.positional(offsets).to(x.dtype)[None, None]]
        if buckets is not None:
            maps.append(self.maps.temporal(buckets).to(x.dtype)[:, None])
        channels = [
            ((weights * allowed) @ v).transpose(1, 2).reshape(batch, length, heads * dv) for weights in maps
        ]
        attended = torch.cat(channels, dim=-1)  # (B, L, c·H·dv): semantic, positional, temporal
        gated = u * F.rms_norm(attended, (attended.shape[-1],), eps=_EPS)

        x = x + self.out(self.dropout(gated))  # stage 1: back to D, residual to the block input
        z = self.dropout(F.rms_norm(x, (dim,), eps=_EPS))
        return x + self.ffn_down(F.silu(self.ffn_gate(z)) * self.ffn_up(z))  # stage 2: SwiGLU


class FuXi(Backbone):
    item_init_std = 0.02  # the authors' code; with Xavier-normal positions, below

    def __init__(self, config: FuXiConfig, use_time: bool = True):
        super().__init__()
        self.dim = config.dim
        self.max_len = config.max_len
        self.n_time_buckets = config.n_time_buckets
        self.use_time = use_time
        self.reads_request_time = use_time and config.query_time == "request"
        self.recurrent_depth = config.recurrent_depth
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        nn.init.xavier_normal_(self.position_embedding.weight)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(FuXiBlock(config, use_time) for _ in range(config.n_blocks))

    def forward(
        self,
        item_embeddings: torch.Tensor,
        timestamps: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        request_times: torch.Tensor | None = None,
    ) -> torch.Tensor:
        positions = reverse_positions(mask).clamp(max=self.max_len - 1)
        x = item_embeddings * math.sqrt(self.dim) + self.position_embedding(positions)
        x = self.dropout(x) * mask[..., None]
        allowed = causal_attention_mask(mask).to(x.dtype)
        # the index tables are shared; each block looks up its own weights in them
        offsets = relative_offsets(mask.shape[1], self.max_len, mask.device)
        queries = request_queries(timestamps, request_times) if self.reads_request_time else None
        buckets = time_buckets(timestamps, self.n_time_buckets, queries) if self.use_time else None
        for _ in range(self.recurrent_depth):  # the same blocks again: depth without parameters
            for block in self.blocks:
                x = block(x, offsets, buckets, allowed, self.max_len)
        return x[:, -1:] if last_only else x
