"""HSTU's own behaviour, checked against the paper's equations (the contract: test_backbone.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from test_backbone import DIM, random_batch  # pytest puts this folder on sys.path

from intentrec.models.fuxi import FuXi, FuXiConfig
from intentrec.models.hstu import HSTU, HSTUConfig
from intentrec.models.relative import RelativeAttentionBias, relative_offsets, time_buckets


def test_a_block_computes_the_published_equations() -> None:
    """One block against a direct, loop-by-loop reading of the paper's equations (no softmax, / n)."""
    torch.manual_seed(0)
    config = HSTUConfig(dim=DIM, n_blocks=1, n_heads=2, dropout=0.0, max_len=5)
    backbone = HSTU(config).eval()
    block = backbone.blocks[0]
    x = torch.randn(1, 4, DIM)
    with torch.no_grad():
        block.rab.position.normal_()
        block.rab.time.normal_()
    offsets = relative_offsets(4, config.max_len, x.device)
    buckets = time_buckets(torch.tensor([[0, 3, 70, 5_000]]), config.n_time_buckets)
    bias = block.rab.position[offsets] + block.rab.time[buckets]  # (1, 4, 4): rab(i, j)
    allowed = torch.ones(4, 4).tril()[None, None]
    got = block(x, offsets, buckets, allowed, n=config.max_len)

    heads, d = 2, DIM // 2
    u, v, q, k = F.silu(F.layer_norm(x[0], (DIM,), eps=1e-6) @ block.uvqk).split([heads * d] * 4, dim=-1)
    attended = torch.zeros(4, heads * d)
    for h in range(heads):
        part = slice(h * d, (h + 1) * d)
        for i in range(4):
            for j in range(i + 1):  # causal
                weight = F.silu(q[i, part] @ k[j, part] + bias[0, i, j]) / config.max_len
                attended[i, part] += weight * v[j, part]
    expected = x[0] + block.out(u * F.layer_norm(attended, (heads * d,), eps=1e-6))
    torch.testing.assert_close(got[0], expected, rtol=1e-5, atol=1e-6)


def test_time_gaps_are_bucketed_on_a_log_scale() -> None:
    bias = RelativeAttentionBias(max_len=4, n_time_buckets=128, use_time=True)
    with torch.no_grad():
        bias.position.zero_()
        bias.time.copy_(torch.arange(129.0))  # the bias equals the bucket number
    gaps = torch.tensor([0, 1, 2, 60, 86_400, 10**18])  # the last lands past the largest bucket
    seconds = torch.stack([torch.zeros_like(gaps), gaps], dim=1)  # (B, 2): the second event is later
    expected = [min(128, math.floor(math.log(max(gap, 1)) / 0.301)) for gap in gaps.tolist()]
    table = bias(relative_offsets(2, 4, gaps.device), time_buckets(seconds, 128))
    assert table[:, 1, 0].tolist() == expected  # query 1 looking back at key 0


def test_relative_positions_and_order_only_logs() -> None:
    bias = RelativeAttentionBias(max_len=3, n_time_buckets=8, use_time=False)
    assert bias.time is None
    with torch.no_grad():
        bias.position.copy_(torch.tensor([10.0, 20.0, 30.0]))
    table = bias(relative_offsets(4, 3, torch.device("cpu")), None)[0]
    assert table[3, 3] == 10 and table[3, 2] == 20 and table[3, 1] == 30 and table[3, 0] == 30  # clamped

    torch.manual_seed(0)
    backbone = HSTU(HSTUConfig(dim=DIM, max_len=8), use_time=False).eval()
    embeddings, timestamps, mask = random_batch(2, 6)
    shuffled = timestamps.flip(1)
    torch.testing.assert_close(backbone(embeddings, timestamps, mask), backbone(embeddings, shuffled, mask))
    timed = HSTU(HSTUConfig(dim=DIM, max_len=8)).eval()
    with torch.no_grad():
        timed.blocks[0].rab.time.normal_()
    assert not torch.allclose(timed(embeddings, timestamps, mask), timed(embeddings, timestamps * 1000, mask))


def test_each_block_has_its_own_bias_and_runs_that_shared_one_still_load() -> None:
    """As in the authors' code, every block learns its own rab; a run saved when one was shared by all
    blocks (``bias.position``, ``bias.time``) loads, each block starting from it, and computes as it did."""
    torch.manual_seed(0)
    backbone = HSTU(HSTUConfig(dim=DIM, max_len=8)).eval()
    first, second = (block.rab for block in backbone.blocks)
    assert first.position is not second.position and first.time is not second.time
    assert not any(name.startswith("bias.") for name, _ in backbone.named_parameters())

    shared = {"position": torch.randn(8), "time": torch.randn(129)}
    old = {name: value for name, value in backbone.state_dict().items() if ".rab." not in name}
    old |= {f"bias.{name}": value for name, value in shared.items()}
    loaded = HSTU(HSTUConfig(dim=DIM, max_len=8)).eval()
    loaded.load_state_dict(old)  # strict: every key placed, none left over
    with torch.no_grad():
        for block in backbone.blocks:
            block.rab.position.copy_(shared["position"])
            block.rab.time.copy_(shared["time"])
    embeddings, timestamps, mask = random_batch(2, 6)
    torch.testing.assert_close(loaded(embeddings, timestamps, mask), backbone(embeddings, timestamps, mask))


@pytest.mark.parametrize("make", [HSTU, FuXi], ids=["hstu", "fuxi"])
def test_asked_at_the_request_time_each_position_sees_the_next_events_time(make) -> None:
    """query_time 'request': position i measures its time gaps from t_{i+1}, the last one from the request,
    so every training position is the state a request at the next event's time would get."""
    config = (HSTUConfig if make is HSTU else FuXiConfig)(dim=DIM, max_len=8, query_time="request")
    torch.manual_seed(0)
    backbone = make(config).eval()
    with torch.no_grad():
        for name, parameter in backbone.named_parameters():
            if name.endswith("time"):
                parameter.normal_()  # large enough to matter
        # absolute positions count back from the last event, so a prefix's would differ from the whole's
        backbone.position_embedding.weight.zero_()
    assert backbone.reads_request_time
    embeddings = torch.randn(1, 6, DIM)
    timestamps = torch.tensor([[0, 50, 60, 4_000, 90_000, 90_030]])
    mask = torch.ones(1, 6, dtype=torch.bool)
    asked = torch.tensor([2_000_000])
    full = backbone(embeddings, timestamps, mask, request_times=asked)
    for i in range(6):
        next_time = timestamps[:, i + 1] if i < 5 else asked
        prefix = backbone(embeddings[:, : i + 1], timestamps[:, : i + 1], mask[:, : i + 1], True, next_time)
        torch.testing.assert_close(prefix[:, 0], full[:, i], rtol=1e-5, atol=1e-5)
    later = backbone(embeddings, timestamps, mask, request_times=asked * 100)
    torch.testing.assert_close(later[:, :-1], full[:, :-1], rtol=0, atol=0)  # only the request moved
    assert not torch.allclose(later[:, -1], full[:, -1])
    with pytest.raises(ValueError, match="time of the request"):
        backbone(embeddings, timestamps, mask)
    # order-only logs have no time to ask at; the default measures from each query's own event
    assert not make(config, use_time=False).reads_request_time
    default = make(config.model_copy(update={"query_time": "last_event"})).eval()
    assert not default.reads_request_time
    torch.testing.assert_close(
        default(embeddings, timestamps, mask), default(embeddings, timestamps, mask, request_times=asked)
    )


@pytest.mark.parametrize(("input_dropout", "dropped"), [(0.0, False), (0.5, True), (None, True)])
def test_input_dropout_is_apart_from_the_blocks_dropout(input_dropout: float | None, dropped: bool) -> None:
    """The blocks' dropout is 0.5; the input's is ``input_dropout`` (None: the blocks' value)."""
    torch.manual_seed(0)
    config = HSTUConfig(dim=DIM, n_blocks=1, dropout=0.5, input_dropout=input_dropout, max_len=6)
    backbone = HSTU(config)
    with torch.no_grad():  # the block adds nothing: what reaches the output is the input as dropped
        backbone.blocks[0].out.weight.zero_()
        backbone.blocks[0].out.bias.zero_()
    embeddings, timestamps, mask = random_batch(2, 6)
    trained = backbone.train()(embeddings, timestamps, mask)
    served = backbone.eval()(embeddings, timestamps, mask)
    assert torch.equal(trained, served) is not dropped
