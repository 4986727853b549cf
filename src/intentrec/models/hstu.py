"""HSTU, Hierarchical Sequential Transduction Units (Zhai et al., ICML 2024: "Actions Speak Louder ...").

Each block, on a batch ``X (B, L, D)`` with H heads:

    U, V, Q, K = split(SiLU(LayerNorm(X) W_uvqk))                    per head: U, V (dv), Q, K (dqk)
    A          = SiLU(Q Kᵀ + rab) / n  ⊙ causal mask                  pointwise: no softmax, n = max_len
    Y          = X + W_o Dropout(U ⊙ LayerNorm(A V))

with LayerNorms without learned scale (eps 1e-6), ``W_uvqk ~ N(0, 0.02²)`` and Xavier-initialised ``W_o``, as
in the authors' code (meta-recsys/generative-recommenders). Each block has its own relative attention bias

    rab(i, j) = w_pos[i - j] + w_time[bucket(t_i - t_j)],   bucket(Δ) = floor(ln(max(|Δ|, 1)) / 0.301)

clamped to ``n_time_buckets`` (``models/relative.py``, shared with FuXi-α); the time term is dropped for
order-only logs (``use_time=False``); runs saved when one bias served every block still load. Inputs are
item embeddings scaled by √D plus a learned position embedding, with dropout (``input_dropout``, as the
blocks' unless set apart: the authors' code and RecBoard keep the two apart), initialised as the authors'
code does (items N(0, 0.02²), positions Xavier-normal: inputs of std about 0.2, not 1: +0.006 to +0.014
test NDCG@10 on MovieLens-100K, and as much for SASRec, BENCHMARKS.md); the model around the backbone
L2-normalises outputs and items when the loss asks for it (``loss.normalize``).

Training: the published MovieLens recipe (sampled softmax with 128 negatives, cosine similarity,
temperature 0.05, lr 1e-3; ``recipes/ml100k-hstu-published.toml``) learns far more slowly in IntentRec's
loop with early stopping than the library's default full softmax, for SASRec as much as for HSTU
(BENCHMARKS.md), so HSTU trains with the same defaults as every backbone.

``recurrent_depth = k`` runs the whole stack k times on all tokens with the same weights, each pass on
the previous pass's output (the depth recurrence of LARES, Liu et al. 2025, without its input
re-injection, noisy start or RL training); k = 1 is the paper's model.

The time bias at query ``i`` measures gaps from ``t_i`` by default (``query_time = "last_event"``: the
model reads the history alone). The authors measure them from the time the prediction is asked for,
``t_{i+1}`` (``query_time = "request"``): in training the next event's time, in evaluation the time of the
user's first target, in serving the time of the request; the target's time, never its item. Positions
count back from the most recent event (histories are right-aligned), which leaves every relative offset
``i - j`` unchanged.
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


class HSTUConfig(Settings):
    """Size and regularisation of an HSTU backbone; defaults follow the published MovieLens model."""

    name: Literal["hstu"] = "hstu"
    dim: int = Field(64, ge=1, description="Embedding size D.")
    n_blocks: int = Field(2, ge=1, description="Number of HSTU blocks.")
    n_heads: int = Field(1, ge=1, description="Attention heads.")
    attention_dim: int | None = Field(None, ge=1, description="dqk per head; None: dim // n_heads.")
    linear_dim: int | None = Field(None, ge=1, description="dv (and U) per head; None: dim // n_heads.")
    dropout: float = Field(0.2, ge=0, lt=1, description="Dropout before W_o (and on the input unless named).")
    input_dropout: float | None = Field(
        None, ge=0, lt=1, description="Dropout on the input embeddings; None: the same as dropout."
    )
    max_len: int = Field(200, ge=1, description="Most recent events the model reads; the n of SiLU(.)/n.")
    n_time_buckets: int = Field(128, ge=1, description="Log-spaced buckets of time gaps for the bias.")
    query_time: QueryTime = Field(
        "last_event", description="Time gaps from each query's own event, or from the time of the request."
    )
    recurrent_depth: int = Field(1, ge=1, description="Passes through the block stack, sharing weights.")


class HSTUBlock(nn.Module):
    def __init__(self, config: HSTUConfig, use_time: bool):
        super().__init__()
        self.n_heads = config.n_heads
        self.attention_dim = config.attention_dim or max(1, config.dim // config.n_heads)
        self.linear_dim = config.linear_dim or max(1, config.dim // config.n_heads)
        width = 2 * self.n_heads * (self.linear_dim + self.attention_dim)  # U and V, then Q and K
        self.uvqk = nn.Parameter(torch.empty(config.dim, width).normal_(0, 0.02))
        self.out = nn.Linear(self.n_heads * self.linear_dim, config.dim)
        nn.init.xavier_uniform_(self.out.weight)
        self.rab = RelativeAttentionBias(config.max_len, config.n_time_buckets, use_time)
        self.dropout = nn.Dropout(config.dropout)

    def forward(
        self,
        x: torch.Tensor,
        offsets: torch.Tensor,
        buckets: torch.Tensor | None,
        allowed: torch.Tensor,
        n: int,
        last_only: bool = False,
    ) -> torch.Tensor:
        """``x (B, L, D)``, ``offsets (L, L)``, ``buckets (B, L, L)`` or None, ``allowed (B, 1, L, L)`` 0/1
        -> ``(B, L, D)``; with ``last_only`` the last position's output alone, ``(B, 1, D)``."""
        batch, length, dim = x.shape
        heads, dv, dqk = self.n_heads, self.linear_dim, self.attention_dim
        bias = self.rab(offsets, buckets).to(x.dtype)  # (B|1, L, L)
        projected = F.silu(F.layer_norm(x, (dim,), eps=_EPS) @ self.uvqk)
        u, v, q, k = projected.split([heads * dv, heads * dv, heads * dqk, heads * dqk], dim=-1)
        if last_only:  # every position's keys and values, the last position's query and gate
            x, u, q, bias, allowed = x[:, -1:], u[:, -1:], q[:, -1:], bias[:, -1:], allowed[..., -1:, :]
        queries = q.shape[1]
        q = q.view(batch, queries, heads, dqk).transpose(1, 2)  # (B, H, L, dqk)
        k = k.view(batch, length, heads, dqk).transpose(1, 2)
        v = v.view(batch, length, heads, dv).transpose(1, 2)  # (B, H, L, dv)
        weights = F.silu(q @ k.transpose(-1, -2) + bias[:, None]) / n * allowed  # (B, H, L, L)
        attended = (weights @ v).transpose(1, 2).reshape(batch, queries, heads * dv)
        gated = u * F.layer_norm(attended, (heads * dv,), eps=_EPS)
        return x + self.out(self.dropout(gated))


class HSTU(Backbone):
    item_init_std = 0.02  # the authors' code; with Xavier-normal positions, below

    def __init__(self, config: HSTUConfig, use_time: bool = True):
        super().__init__()
        self.dim = config.dim
        self.max_len = config.max_len
        self.recurrent_depth = config.recurrent_depth
        self.reads_request_time = use_time and config.query_time == "request"
        self.n_time_buckets = config.n_time_buckets
        self.use_time = use_time
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        nn.init.xavier_normal_(self.position_embedding.weight)
        input_dropout = config.dropout if config.input_dropout is None else config.input_dropout
        self.dropout = nn.Dropout(input_dropout)
        self.blocks = nn.ModuleList(HSTUBlock(config, use_time) for _ in range(config.n_blocks))
        self.register_load_state_dict_pre_hook(_one_bias_for_every_block)

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
        # the same blocks again on later passes: depth without parameters
        stack = [block for _ in range(self.recurrent_depth) for block in self.blocks]
        for depth, block in enumerate(stack, 1):
            last = last_only and depth == len(stack)
            x = block(x, offsets, buckets, allowed, self.max_len, last_only=last)
        return x


def _one_bias_for_every_block(
    module: HSTU, state_dict: dict[str, torch.Tensor], prefix: str, *_: object
) -> None:
    """Runs saved before each block had a relative bias of its own kept one for all (``bias.position``,
    ``bias.time``): every block starts from that one, which computes exactly what the run computed."""
    for name in ("position", "time"):
        shared = state_dict.pop(f"{prefix}bias.{name}", None)
        if shared is not None:
            for index in range(len(module.blocks)):
                state_dict.setdefault(f"{prefix}blocks.{index}.rab.{name}", shared)
