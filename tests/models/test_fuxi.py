"""FuXi-α's own behaviour, checked against the paper's equations (the contract: test_backbone.py)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from test_backbone import DIM, random_batch  # pytest puts this folder on sys.path

from intentrec.models.fuxi import FuXi, FuXiConfig
from intentrec.models.relative import relative_offsets, time_buckets


def rms(x: torch.Tensor) -> torch.Tensor:
    return x / torch.sqrt(x.pow(2).mean() + 1e-6)


def test_a_block_computes_the_published_equations() -> None:
    """One block against a direct, loop-by-loop reading of the AMS and MFFN equations."""
    torch.manual_seed(0)
    config = FuXiConfig(dim=DIM, n_blocks=1, n_heads=2, dropout=0.0, max_len=5, n_time_buckets=16)
    block = FuXi(config).eval().blocks[0]
    with torch.no_grad():  # channel maps large enough to matter
        block.maps.position.normal_()
        block.maps.time.normal_()
    x = torch.randn(1, 4, DIM)
    seconds = torch.tensor([[0, 30, 4_000, 90_000]])
    allowed = torch.ones(4, 4).tril()[None, None]
    got = block(x, relative_offsets(4, 5, x.device), time_buckets(seconds, 16), allowed, n=config.max_len)

    heads, d = 2, DIM // 2
    projected = F.silu(torch.stack([rms(row) for row in x[0]]) @ block.uvqk)
    u, v, q, k = projected.split([3 * heads * d, heads * d, heads * d, heads * d], dim=-1)
    expected = torch.zeros(4, DIM)
    for i in range(4):
        semantic, positional, temporal = (torch.zeros(heads * d) for _ in range(3))
        for h in range(heads):
            part = slice(h * d, (h + 1) * d)
            for j in range(i + 1):  # causal
                gap = abs(seconds[0, i] - seconds[0, j]).item()
                gap_bucket = min(16, math.floor(math.log(max(gap, 1)) / 0.301))
                semantic[part] += F.silu(q[i, part] @ k[j, part]) / config.max_len * v[j, part]
                positional[part] += block.maps.position[i - j] * v[j, part]
                temporal[part] += block.maps.time[gap_bucket] * v[j, part]
        h_i = u[i] * rms(torch.cat([semantic, positional, temporal]))
        o_i = x[0, i] + block.out(h_i)  # MFFN stage 1
        z = rms(o_i)
        expected[i] = o_i + block.ffn_down(F.silu(block.ffn_gate(z)) * block.ffn_up(z))  # stage 2
    torch.testing.assert_close(got[0], expected, rtol=1e-4, atol=1e-5)


def test_every_block_has_its_own_positional_and_temporal_maps() -> None:
    backbone = FuXi(FuXiConfig(dim=DIM, n_blocks=2, max_len=7, n_time_buckets=9))
    names = {name for name, _ in backbone.named_parameters()}
    assert {"blocks.0.maps.position", "blocks.1.maps.time"} <= names
    assert backbone.blocks[0].maps.position.shape == (7,) and backbone.blocks[0].maps.time.shape == (10,)
    assert backbone.blocks[0].out.in_features == 3 * DIM  # three channels concatenated


def test_the_temporal_channel_reads_time_gaps_and_is_dropped_for_order_only_logs() -> None:
    torch.manual_seed(0)
    embeddings, timestamps, mask = random_batch(2, 6)
    timed = FuXi(FuXiConfig(dim=DIM, max_len=8)).eval()
    with torch.no_grad():
        for block in timed.blocks:
            block.maps.time.normal_()
    assert not torch.allclose(timed(embeddings, timestamps, mask), timed(embeddings, timestamps * 1000, mask))

    untimed = FuXi(FuXiConfig(dim=DIM, max_len=8), use_time=False).eval()
    assert untimed.blocks[0].maps.time is None and untimed.blocks[0].out.in_features == 2 * DIM
    torch.testing.assert_close(
        untimed(embeddings, timestamps, mask), untimed(embeddings, timestamps.flip(1), mask)
    )


def test_the_positional_channel_sees_the_order_of_events() -> None:
    """Without absolute positions or time, one block's semantic channel is blind to the order of earlier
    events; the positional channel is what tells them apart."""
    torch.manual_seed(0)
    backbone = FuXi(FuXiConfig(dim=DIM, n_blocks=1, max_len=8, dropout=0.0), use_time=False).eval()
    with torch.no_grad():
        backbone.position_embedding.weight.zero_()  # no absolute position either
        backbone.blocks[0].maps.position.copy_(torch.linspace(2.0, -2.0, 8))
    embeddings, timestamps, mask = random_batch(1, 5)
    swapped = embeddings[:, [1, 0, 2, 3, 4]]  # the same set of events up to the last, in another order
    assert not torch.allclose(
        backbone(embeddings, timestamps, mask)[:, -1], backbone(swapped, timestamps, mask)[:, -1]
    )
