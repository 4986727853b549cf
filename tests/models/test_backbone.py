"""The backbone contract (causal, padding-invariant, right shapes), checked for every backbone.

Every :class:`~intentrec.models.backbone.Backbone` subclass in :mod:`intentrec.models` must be enrolled in
:data:`BACKBONES`; :func:`test_every_backbone_is_enrolled` fails otherwise, so a new backbone cannot skip
the contract tests. Each backbone's own behaviour is tested in its own file (test_sasrec.py, ...).
"""

from __future__ import annotations

import importlib
import math
import pkgutil
from collections.abc import Callable

import pytest
import torch

import intentrec.models
from intentrec.models.backbone import Backbone, causal_attention_mask, reverse_positions
from intentrec.models.fuxi import FuXi, FuXiConfig
from intentrec.models.gru4rec import GRU4Rec, GRU4RecConfig
from intentrec.models.hstu import HSTU, HSTUConfig
from intentrec.models.model import SequentialModel
from intentrec.models.sasrec import SASRec, SASRecConfig

#: ``dim -> a small backbone with that hidden size``, one per backbone class.
BACKBONES: dict[str, Callable[[int], Backbone]] = {
    "sasrec": lambda dim: SASRec(SASRecConfig(dim=dim, n_blocks=2, n_heads=2, dropout=0.1, max_len=12)),
    "hstu": lambda dim: HSTU(HSTUConfig(dim=dim, n_blocks=2, n_heads=2, dropout=0.1, max_len=12)),
    "gru4rec": lambda dim: GRU4Rec(GRU4RecConfig(dim=dim, n_layers=2, dropout=0.1, max_len=12)),
    "fuxi": lambda dim: FuXi(FuXiConfig(dim=dim, n_blocks=2, n_heads=2, dropout=0.1, max_len=12)),
    # order-only logs drop FuXi-α's temporal channel; recurrent depth changes how the blocks are applied
    "fuxi-no-time": lambda dim: FuXi(FuXiConfig(dim=dim, max_len=12), use_time=False),
    "sasrec-depth": lambda dim: SASRec(SASRecConfig(dim=dim, n_blocks=1, max_len=12, recurrent_depth=3)),
    "hstu-depth": lambda dim: HSTU(HSTUConfig(dim=dim, n_blocks=1, max_len=12, recurrent_depth=3)),
    "fuxi-depth": lambda dim: FuXi(FuXiConfig(dim=dim, n_blocks=1, max_len=12, recurrent_depth=3)),
}

#: The classes the factories build, for the enrolment check.
ENROLLED = {type(factory(8)) for factory in BACKBONES.values()}

DIM = 8
backbone_names = pytest.mark.parametrize("name", list(BACKBONES))


def all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | all_subclasses(sub)
    return found


def test_every_backbone_is_enrolled() -> None:
    for module in pkgutil.walk_packages(intentrec.models.__path__, "intentrec.models."):
        importlib.import_module(module.name)
    backbones = {cls for cls in all_subclasses(Backbone) if cls.__module__.startswith("intentrec.models")}
    missing = sorted(cls.__qualname__ for cls in backbones - ENROLLED)
    assert not missing, f"add a factory for {missing} to BACKBONES in tests/models/test_backbone.py"


def random_batch(batch: int, length: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Embeddings ``(B, L, D)``, increasing timestamps ``(B, L)`` and a left-padded mask ``(B, L)``."""
    generator = torch.Generator().manual_seed(seed)
    embeddings = torch.randn(batch, length, DIM, generator=generator)
    timestamps = torch.arange(length).expand(batch, length) * 60 + 1_000_000
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    lengths[0] = length  # one full row
    mask = torch.arange(length)[None, :] >= (length - lengths)[:, None]
    return embeddings * mask[..., None], timestamps * mask, mask


def build(name: str, seed: int = 0) -> Backbone:
    torch.manual_seed(seed)
    return BACKBONES[name](DIM).eval()


@backbone_names
def test_output_shape_dim_and_finite(name: str) -> None:
    backbone = build(name)
    embeddings, timestamps, mask = random_batch(4, 7)
    hidden = backbone(embeddings, timestamps, mask)
    assert backbone.dim == DIM
    assert hidden.shape == (4, 7, DIM)
    assert torch.isfinite(hidden).all()  # padded positions too: they must never produce NaN


@backbone_names
def test_causal_a_future_event_never_changes_earlier_positions(name: str) -> None:
    backbone = build(name)
    embeddings, timestamps, mask = random_batch(3, 9)
    before = backbone(embeddings, timestamps, mask)
    for t in range(9):
        changed = embeddings.clone()
        changed[:, t] = torch.randn(3, DIM) * mask[:, t, None]  # a different item at t, padding stays padding
        after = backbone(changed, timestamps, mask)
        torch.testing.assert_close(after[:, :t], before[:, :t], rtol=0, atol=1e-6)
        real = mask[:, t]
        assert not torch.allclose(after[real, t], before[real, t])  # position t itself does see it


@backbone_names
def test_left_padding_does_not_change_the_last_hidden_state(name: str) -> None:
    backbone = build(name)
    embeddings, timestamps, mask = random_batch(4, 6)
    last = backbone(embeddings, timestamps, mask)[:, -1]
    for extra in (1, 5):
        padded = backbone(
            torch.nn.functional.pad(embeddings, (0, 0, extra, 0)),
            torch.nn.functional.pad(timestamps, (extra, 0)),
            torch.nn.functional.pad(mask, (extra, 0)),
        )
        torch.testing.assert_close(padded[:, -1], last, rtol=0, atol=1e-5)
        # every real position, not only the last, is unaffected
        torch.testing.assert_close(padded[:, extra:][mask], backbone(embeddings, timestamps, mask)[mask])


@backbone_names
def test_a_row_does_not_depend_on_the_other_rows_of_its_batch(name: str) -> None:
    backbone = build(name)
    embeddings, timestamps, mask = random_batch(5, 6)
    together = backbone(embeddings, timestamps, mask)
    alone = backbone(embeddings[2:3], timestamps[2:3], mask[2:3])
    torch.testing.assert_close(alone[0][mask[2]], together[2][mask[2]], rtol=0, atol=1e-5)


@backbone_names
def test_gradients_reach_every_parameter_and_are_finite(name: str) -> None:
    backbone = build(name).train()
    embeddings, timestamps, mask = random_batch(4, 6)
    embeddings.requires_grad_(True)
    backbone(embeddings, timestamps, mask)[mask].pow(2).sum().backward()
    for parameter_name, parameter in backbone.named_parameters():
        assert parameter.grad is not None, parameter_name
        assert torch.isfinite(parameter.grad).all(), parameter_name
    assert torch.isfinite(embeddings.grad).all()


@backbone_names
def test_inside_the_model_scores_have_the_catalogue_shape(name: str) -> None:
    torch.manual_seed(0)
    model = SequentialModel(BACKBONES[name](DIM), n_items=11).eval()
    items = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 11]])  # (B=2, L=5), 0 = padding
    timestamps = torch.arange(5).expand(2, 5)
    assert model(items, timestamps).shape == (2, 5, DIM)
    scores, heads = model.score_last(items, timestamps)
    assert heads is None  # no prior heads
    assert scores.shape == (2, 11)  # dataset items only, not the padding row
    assert model.output_embeddings().shape == (12, DIM)
    assert torch.all(model.item_embedding.weight[0] == 0)


def test_causal_attention_mask() -> None:
    mask = torch.tensor([[False, True, True]])
    allowed = causal_attention_mask(mask)
    assert allowed.shape == (1, 1, 3, 3)
    expected = torch.tensor(
        [
            [True, False, False],  # a padded query keeps only itself (no NaN)
            [False, True, False],  # real queries never see padding keys
            [False, True, True],
        ]
    )
    assert torch.equal(allowed[0, 0], expected)


def test_reverse_positions_count_back_from_the_most_recent_event() -> None:
    mask = torch.tensor([[False, True, True, True], [True, True, True, True]])
    assert reverse_positions(mask).tolist() == [[3, 2, 1, 0], [3, 2, 1, 0]]


@backbone_names
def test_last_only_is_the_last_position_of_the_full_output(name: str) -> None:
    backbone = build(name)
    embeddings, timestamps, mask = random_batch(5, 9, seed=3)
    full = backbone(embeddings, timestamps, mask)
    last = backbone(embeddings, timestamps, mask, last_only=True)
    assert last.shape == (5, 1, DIM)
    torch.testing.assert_close(last, full[:, -1:], rtol=1e-5, atol=1e-5)
    empty = [tensor[:0] for tensor in (embeddings, timestamps, mask)]  # no users: shapes, not an error
    assert backbone(*empty).shape == (0, 9, DIM) and backbone(*empty, last_only=True).shape == (0, 1, DIM)


@backbone_names
def test_bfloat16_inference_is_close_to_float32_and_training_stays_float32(name: str) -> None:
    torch.manual_seed(0)
    model = SequentialModel(BACKBONES[name](DIM), n_items=11).eval()
    items = torch.tensor([[0, 0, 3, 4, 5], [1, 2, 3, 4, 11]])
    timestamps = torch.arange(5).expand(2, 5) * 60
    full = model(items, timestamps, last_only=True)
    model.inference_dtype = "bfloat16"
    low = model(items, timestamps, last_only=True)
    assert low.dtype == torch.float32  # cast back before items are scored
    assert not torch.equal(low, full)  # the backbone did run in bfloat16
    torch.testing.assert_close(low, full, rtol=0.05, atol=0.05)
    model.train()  # the setting is for ranking only: training always computes in float32
    torch.manual_seed(1)
    trained = model(items, timestamps, last_only=True)
    model.inference_dtype = "float32"
    torch.manual_seed(1)
    torch.testing.assert_close(trained, model(items, timestamps, last_only=True), rtol=0, atol=0)


@pytest.mark.parametrize("make", [HSTU, FuXi, SASRec], ids=["hstu", "fuxi", "sasrec"])
def test_inputs_start_at_the_scale_of_the_authors_code(make) -> None:
    """Items N(0, 0.02²) and Xavier-normal positions (generative-recommenders' and
    RecBole's init), not unit-scale inputs; GRU4Rec, with no positions, keeps N(0, 1/D) items."""
    torch.manual_seed(0)
    config = {HSTU: HSTUConfig, FuXi: FuXiConfig, SASRec: SASRecConfig}[make](dim=DIM, max_len=50)
    backbone = make(config)
    items = SequentialModel(backbone, n_items=5_000).item_embedding.weight
    assert items[0].abs().max() == 0  # padding
    assert items[1:].std().item() == pytest.approx(0.02, rel=0.05)
    xavier = math.sqrt(2 / (50 + DIM))
    assert backbone.position_embedding.weight.std().item() == pytest.approx(xavier, rel=0.1)
    recurrent = SequentialModel(GRU4Rec(GRU4RecConfig(dim=DIM)), n_items=5_000).item_embedding.weight
    assert recurrent[1:].std().item() == pytest.approx(DIM**-0.5, rel=0.05)
