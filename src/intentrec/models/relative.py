"""Learned attention terms over the relative position and the time gap of two events (HSTU, FuXi-α).

Both backbones learn one weight per causal offset ``i - j`` and one per log-spaced bucket of the time gap
(Zhai et al., ICML 2024; the same buckets in FuXi-α's code):

    bucket(Δ) = floor(ln(max(|Δ|, 1)) / 0.301)      clamped to n_time_buckets

(the authors' constant: log10(2) dividing a natural log, so one bucket per factor e^0.301 ≈ 1.35, not 2: a
minute is bucket 13, a day 37, a year 57, 2^31 s 71; the default 128 buckets leave the rest unused).

HSTU adds the two to its attention logits (its ``rab``); FuXi-α uses each as an attention map of its own.
The index tables depend only on the batch, so a backbone computes them once and every block looks its own
weights up in them.

Which time a query stands at is a choice (``query_time``): the time of its own event, ``t_i`` (IntentRec's
default), or the time its prediction is asked for, ``t_{i+1}``: in training the next event's time, at the
last position the time of the request (the authors' code; the gap since each event, as a request sees it).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

#: The time a query stands at in the time-gap terms (see the module docstring).
QueryTime = Literal["last_event", "request"]


def relative_offsets(length: int, max_len: int, device: torch.device) -> torch.Tensor:
    """``(L, L)`` offset ``i - j`` of key ``j`` before query ``i``, clamped to ``[0, max_len - 1]``.

    Keys after the query get offset 0's weight, but the causal mask removes them anyway.
    """
    index = torch.arange(length, device=device)
    return (index[:, None] - index[None, :]).clamp(0, max_len - 1)


def request_queries(timestamps: torch.Tensor, request_times: torch.Tensor | None) -> torch.Tensor:
    """``(B, L)`` the time each position's prediction is asked for (``query_time = "request"``): the next
    event's time, and at the last position ``request_times (B,)``."""
    if request_times is None:
        raise ValueError("this backbone reads the time of the request (query_time 'request'); none was given")
    return torch.cat([timestamps[:, 1:], request_times.to(timestamps)[:, None]], dim=1)


def time_buckets(
    timestamps: torch.Tensor, n_time_buckets: int, queries: torch.Tensor | None = None
) -> torch.Tensor:
    """``(B, L, L)`` log-spaced bucket of ``|q_i - t_j|`` in seconds, clamped to ``n_time_buckets``, where
    ``q = queries`` (from :func:`request_queries`) or, by default, the events' own times."""
    queries = timestamps if queries is None else queries
    gaps = (queries[:, :, None] - timestamps[:, None, :]).abs().clamp(min=1)
    # float64: int64 seconds lose precision in float32 long before the log does
    return (torch.log(gaps.double()) / 0.301).floor().long().clamp(0, n_time_buckets)


class RelativeAttentionBias(nn.Module):
    """A learned weight per causal offset and, when ``use_time``, one per time-gap bucket."""

    def __init__(self, max_len: int, n_time_buckets: int, use_time: bool):
        super().__init__()
        self.position = nn.Parameter(torch.empty(max_len).normal_(0, 0.02))
        self.time = nn.Parameter(torch.empty(n_time_buckets + 1).normal_(0, 0.02)) if use_time else None

    def positional(self, offsets: torch.Tensor) -> torch.Tensor:
        """``(L, L)`` weights of the offsets from :func:`relative_offsets`."""
        return self.position[offsets]

    def temporal(self, buckets: torch.Tensor) -> torch.Tensor:
        """``(B, L, L)`` weights of the buckets from :func:`time_buckets` (only when ``use_time``)."""
        assert self.time is not None, "built with use_time=False"
        return self.time[buckets]

    def forward(self, offsets: torch.Tensor, buckets: torch.Tensor | None) -> torch.Tensor:
        """``rab (B|1, L, L)`` = positional + temporal weights, as HSTU adds them to its logits, from the
        tables of :func:`relative_offsets` and :func:`time_buckets` (None when not ``use_time``)."""
        bias = self.positional(offsets)[None]  # (1, L, L)
        if buckets is not None:
            bias = bias + self.temporal(buckets)
        return bias
