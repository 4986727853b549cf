"""SASRec: Self-Attentive Sequential Recommendation (Kang & McAuley, ICDM 2018).

Item embedding (scaled by √D) + learned position embedding, dropout, then ``n_blocks`` pre-LayerNorm
Transformer blocks with causal multi-head self-attention and a position-wise feed-forward network, and a
final LayerNorm. The paper's blocks normalise only the query before attention; we use the now standard
pre-LN block, which trains as well and more stably (as do the RecBole and eSASRec implementations). Item
embeddings start at N(0, 0.02²) and positions Xavier-normal (inputs of std about 0.2 after the √D
scaling, as RecBole's and HSTU's code start them), not at unit scale: +0.008 to +0.011 test NDCG@10 on
MovieLens-100K (BENCHMARKS.md, "Initialised as the authors' code").

``recurrent_depth = k`` applies the whole stack of blocks k times to all tokens with the same weights, so
depth grows without parameters: the depth recurrence of LARES (Liu et al., arXiv 2505.16865). The core
that recurs is the whole stack (with ``n_blocks=1``, one core block), not a separate core between a pre-
and a post-block; each pass starts from the previous pass's output, with neither LARES's re-injection of
the input nor its noisy initial state, nor its two-phase (self-supervised, then RL) training. k = 1 is
the plain model.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from intentrec.models.backbone import Backbone, causal_attention_mask, reverse_positions
from intentrec.settings import Settings


class SASRecConfig(Settings):
    """Size and regularisation of a SASRec backbone."""

    name: Literal["sasrec"] = "sasrec"
    dim: int = Field(192, ge=1, description="Hidden size D (also the item embedding size).")
    n_blocks: int = Field(2, ge=1, description="Number of Transformer blocks.")
    n_heads: int = Field(1, ge=1, description="Attention heads; must divide dim.")
    dropout: float = Field(0.5, ge=0, lt=1, description="Dropout on embeddings, attention and FFN.")
    max_len: int = Field(50, ge=1, description="Most recent events the model reads.")
    recurrent_depth: int = Field(1, ge=1, description="Passes through the block stack, sharing weights.")

    @model_validator(mode="after")
    def _heads_divide_width(self) -> SASRecConfig:
        if self.dim % self.n_heads:
            raise ValueError(f"model.n_heads ({self.n_heads}) must divide model.dim ({self.dim})")
        return self


class SelfAttention(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        if dim % n_heads:
            raise ValueError(f"dim ({dim}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``(B, L, D)`` -> ``(B, L, D)``, or with ``last_only`` the last position's output ``(B, 1, D)``."""
        batch, length, dim = x.shape
        heads, per_head = self.n_heads, dim // self.n_heads
        if last_only:  # keys and values of every position, the query of the last one only
            weight, bias = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, -1:], weight[:dim], bias[:dim]).view(batch, 1, heads, per_head).transpose(1, 2)
            kv = F.linear(x, weight[dim:], bias[dim:]).view(batch, length, 2, heads, per_head)
            k, v = kv.permute(2, 0, 3, 1, 4)
            attn_mask = attn_mask[..., -1:, :]
        else:  # (B, L, 3D) -> three (B, H, L, D/H)
            q, k, v = self.qkv(x).view(batch, length, 3, heads, per_head).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )
        return self.out(y.transpose(1, 2).reshape(batch, q.shape[2], dim))  # (B, queries, D), even for B = 0


class Block(nn.Module):
    def __init__(self, dim: int, n_heads: int, dropout: float):
        super().__init__()
        self.attention_norm = nn.LayerNorm(dim)
        self.attention = SelfAttention(dim, n_heads, dropout)
        self.ffn_norm = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(
            nn.Linear(dim, dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(dim, dim), nn.Dropout(dropout)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        attended = self.attention(self.attention_norm(x), attn_mask, last_only)
        x = (x[:, -1:] if last_only else x) + self.dropout(attended)
        return x + self.ffn(self.ffn_norm(x))


class SASRec(Backbone):
    item_init_std = 0.02  # as RecBole's and HSTU's code; with Xavier-normal positions, below

    def __init__(self, config: SASRecConfig):
        super().__init__()
        self.dim = config.dim
        self.recurrent_depth = config.recurrent_depth
        self.position_embedding = nn.Embedding(config.max_len, config.dim)
        nn.init.xavier_normal_(self.position_embedding.weight)
        self.dropout = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.dim, config.n_heads, config.dropout) for _ in range(config.n_blocks)
        )
        self.final_norm = nn.LayerNorm(config.dim)

    def forward(
        self,
        item_embeddings: torch.Tensor,
        timestamps: torch.Tensor,
        mask: torch.Tensor,
        last_only: bool = False,
        request_times: torch.Tensor | None = None,  # reads no time
    ) -> torch.Tensor:
        positions = reverse_positions(mask).clamp(max=self.position_embedding.num_embeddings - 1)
        x = item_embeddings * math.sqrt(self.dim) + self.position_embedding(positions)
        x = self.dropout(x) * mask[..., None]
        attn_mask = causal_attention_mask(mask)
        # the same blocks again on later passes: depth without parameters
        stack = [block for _ in range(self.recurrent_depth) for block in self.blocks]
        for depth, block in enumerate(stack, 1):
            # the last block computes only what the last position needs: a third less work for 2 blocks
            x = block(x, attn_mask, last_only=last_only and depth == len(stack))
        return self.final_norm(x)
