"""Recurrent depth (LARES) on the attention backbones: the same blocks applied k times, no new weights."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from test_backbone import DIM, random_batch  # pytest puts this folder on sys.path

from intentrec.config import RunConfig
from intentrec.models.backbone import Backbone
from intentrec.models.fuxi import FuXi, FuXiConfig
from intentrec.models.hstu import HSTU, HSTUConfig
from intentrec.models.sasrec import SASRec, SASRecConfig

#: ``depth -> a small attention backbone run that many times through its blocks``.
DEEPENING: dict[str, Callable[[int], Backbone]] = {
    "sasrec": lambda k: SASRec(SASRecConfig(dim=DIM, n_blocks=2, n_heads=2, max_len=8, recurrent_depth=k)),
    "hstu": lambda k: HSTU(HSTUConfig(dim=DIM, n_blocks=2, n_heads=2, max_len=8, recurrent_depth=k)),
    "fuxi": lambda k: FuXi(FuXiConfig(dim=DIM, n_blocks=2, n_heads=2, max_len=8, recurrent_depth=k)),
}
names = pytest.mark.parametrize("name", list(DEEPENING))


def build(name: str, depth: int) -> Backbone:
    torch.manual_seed(0)
    return DEEPENING[name](depth).eval()


@names
def test_depth_adds_no_parameters_and_renames_none(name: str) -> None:
    shallow, deep = build(name, 1), build(name, 3)
    assert sum(p.numel() for p in deep.parameters()) == sum(p.numel() for p in shallow.parameters())
    # a checkpoint of the plain model loads into the deep one as it is, and the reverse
    deep.load_state_dict(shallow.state_dict(), strict=True)
    shallow.load_state_dict(deep.state_dict(), strict=True)


@names
def test_depth_k_applies_the_same_blocks_k_times(name: str) -> None:
    """Depth 3 equals the depth-1 stack written out three times in a row, with the same weights."""
    shallow, deep = build(name, 1), build(name, 3)
    deep.load_state_dict(shallow.state_dict())
    embeddings, timestamps, mask = random_batch(3, 6)
    unrolled = type(shallow)(shallow_config(name, n_blocks=6)).eval()  # 3 × 2 blocks, written out
    state = shallow.state_dict()
    for key, value in list(state.items()):
        if key.startswith("blocks.0.") or key.startswith("blocks.1."):
            index = int(key.split(".")[1])
            for copy in range(3):
                state[key.replace(f"blocks.{index}.", f"blocks.{2 * copy + index}.", 1)] = value
    unrolled.load_state_dict(state)
    torch.testing.assert_close(deep(embeddings, timestamps, mask), unrolled(embeddings, timestamps, mask))
    assert not torch.allclose(deep(embeddings, timestamps, mask), shallow(embeddings, timestamps, mask))


def shallow_config(name: str, n_blocks: int) -> SASRecConfig | HSTUConfig | FuXiConfig:
    config = {"sasrec": SASRecConfig, "hstu": HSTUConfig, "fuxi": FuXiConfig}[name]
    return config(dim=DIM, n_blocks=n_blocks, n_heads=2, max_len=8)


@names
def test_gradients_of_a_reused_block_add_up_over_its_passes(name: str) -> None:
    deep = build(name, 2).train()
    embeddings, timestamps, mask = random_batch(2, 5)
    deep(embeddings, timestamps, mask)[mask].pow(2).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in deep.parameters())


@pytest.mark.parametrize("name", ["sasrec", "hstu", "fuxi"])
def test_saved_configs_without_the_option_keep_depth_one(name: str) -> None:
    config = RunConfig.from_dict({"model": {"name": name}})
    assert config.model.recurrent_depth == 1
    deeper = RunConfig.from_dict({"model": {"name": name, "recurrent_depth": 4}})
    assert deeper.model.recurrent_depth == 4
