"""Each training loss against a slow, obvious reference written from its definition.

The sampled losses draw their negatives with ``torch.randint``; the tests replace it with a fixed draw so
that the reference sees exactly the same negatives, including accidental hits (a negative equal to the
target), which must not count as negatives.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from intentrec.training.losses import (
    LossConfig,
    binary_cross_entropy_loss,
    full_softmax_loss,
    next_item_loss,
    sampled_softmax_loss,
)

N, D, N_ITEMS = 5, 8, 9


@pytest.fixture
def case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``hidden (N, D)``, ``targets (N,)`` in ``1..n_items`` and ``items (n_items + 1, D)``."""
    generator = torch.Generator().manual_seed(0)
    hidden = torch.randn(N, D, generator=generator, dtype=torch.float64)
    items = torch.randn(N_ITEMS + 1, D, generator=generator, dtype=torch.float64)
    items[0] = 100.0  # padding row: huge, so including it anywhere would show
    targets = torch.tensor([1, 3, 9, 3, 5])
    return hidden, targets, items


def fixed_randint(monkeypatch: pytest.MonkeyPatch, values: list[int]) -> None:
    """Make ``torch.randint(low, high, size)`` return ``values`` (checked to be in range)."""

    def randint(low: int, high: int, size: tuple[int, ...], **_: object) -> torch.Tensor:
        drawn = torch.tensor(values[: math.prod(size)]).reshape(size)
        assert drawn.min() >= low and drawn.max() < high  # the real draw's range excludes padding
        return drawn

    monkeypatch.setattr(torch, "randint", randint)


def dot(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(sum(x * y for x, y in zip(a.tolist(), b.tolist(), strict=True)))


# --- slow references ---------------------------------------------------------------------------------------


def reference_full_softmax(hidden, targets, items, temperature, smoothing=0.0) -> float:
    """Cross-entropy against (1 - smoothing) on the target + smoothing spread evenly over every item."""
    losses = []
    for h, target in zip(hidden, targets.tolist(), strict=True):
        logits = {i: dot(h, items[i]) / temperature for i in range(1, len(items))}  # never padding
        log_partition = math.log(sum(math.exp(v) for v in logits.values()))
        mean_nll = sum(log_partition - v for v in logits.values()) / len(logits)
        losses.append((1 - smoothing) * (log_partition - logits[target]) + smoothing * mean_nll)
    return sum(losses) / len(losses)


def reference_sampled_softmax(hidden, targets, items, negatives, temperature, mask_hits=True) -> float:
    losses = []
    for h, target in zip(hidden, targets.tolist(), strict=True):
        positive = dot(h, items[target]) / temperature
        others = [dot(h, items[n]) / temperature for n in negatives if n != target or not mask_hits]
        losses.append(math.log(math.exp(positive) + sum(math.exp(v) for v in others)) - positive)
    return sum(losses) / len(losses)


def reference_bce(hidden, targets, items, negatives, temperature) -> float:
    def softplus(x: float) -> float:
        return math.log1p(math.exp(x))

    positive = negative = 0.0
    kept = 0
    for h, target, sampled in zip(hidden, targets.tolist(), negatives, strict=True):
        positive += softplus(-dot(h, items[target]) / temperature)  # -log sigmoid(s)
        if sampled != target:  # an accidental hit is not a negative: the mean is over the others
            negative += softplus(dot(h, items[sampled]) / temperature)  # -log(1 - sigmoid(s))
            kept += 1
    return positive / len(targets) + negative / max(kept, 1)


# --- parity ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 0.25, 3.0])
def test_full_softmax_is_cross_entropy_over_every_item_but_padding(case, temperature) -> None:
    hidden, targets, items = case
    loss = full_softmax_loss(hidden, targets, items, temperature)
    assert loss.item() == pytest.approx(reference_full_softmax(hidden, targets, items, temperature), rel=1e-9)


@pytest.mark.parametrize("smoothing", [0.1, 0.5])
def test_label_smoothing_spreads_part_of_the_target_over_every_item(case, smoothing) -> None:
    hidden, targets, items = case
    loss = full_softmax_loss(hidden, targets, items, 0.5, smoothing)
    expected = reference_full_softmax(hidden, targets, items, 0.5, smoothing)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    assert expected != pytest.approx(reference_full_softmax(hidden, targets, items, 0.5), rel=1e-3)


def test_label_smoothing_is_refused_where_there_is_no_full_softmax() -> None:
    with pytest.raises(ValueError, match=r"label_smoothing.*needs kind 'softmax'"):
        LossConfig(kind="sampled_softmax", label_smoothing=0.1)
    assert LossConfig(label_smoothing=0.1).label_smoothing == 0.1


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sampled_softmax_masks_accidental_hits(case, monkeypatch, temperature) -> None:
    hidden, targets, items = case
    negatives = [3, 2, 9, 3, 7, 1]  # 3 is the target of rows 1 and 3, 9 of row 2, 1 of row 0
    fixed_randint(monkeypatch, negatives)
    loss = sampled_softmax_loss(hidden, targets, items, len(negatives), temperature)
    expected = reference_sampled_softmax(hidden, targets, items, negatives, temperature)
    assert loss.item() == pytest.approx(expected, rel=1e-9)
    # without the mask the answer would differ: the hits really were there
    unmasked = reference_sampled_softmax(hidden, targets, items, negatives, temperature, mask_hits=False)
    assert abs(unmasked - expected) > 1e-3


def test_sampled_softmax_per_position_draws_each_row_its_own_negatives(case, monkeypatch) -> None:
    hidden, targets, items = case
    rows = [[3, 2], [4, 3], [9, 8], [1, 2], [5, 6]]  # hits: row 1's 3, row 2's 9, row 4's 5
    fixed_randint(monkeypatch, [n for row in rows for n in row])
    loss = sampled_softmax_loss(hidden, targets, items, 2, 0.5, shared=False)
    expected = [
        reference_sampled_softmax(hidden[i : i + 1], targets[i : i + 1], items, rows[i], 0.5)
        for i in range(len(rows))
    ]
    assert loss.item() == pytest.approx(sum(expected) / len(expected), rel=1e-9)


def test_sampled_softmax_when_every_negative_is_the_target_is_zero() -> None:
    hidden = torch.randn(3, D, requires_grad=True)
    items = torch.randn(2, D, requires_grad=True)  # one item: every draw from 1..1 is an accidental hit
    loss = sampled_softmax_loss(hidden, torch.ones(3, dtype=torch.long), items, 16, 1.0)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(items.grad).all()


@pytest.mark.parametrize("temperature", [1.0, 0.2])
def test_bce_with_one_negative_per_position(case, monkeypatch, temperature) -> None:
    hidden, targets, items = case
    negatives = [2, 3, 4, 6, 5]  # row 4's negative is its target: ignored
    fixed_randint(monkeypatch, negatives)
    loss = binary_cross_entropy_loss(hidden, targets, items, temperature)
    assert loss.item() == pytest.approx(
        reference_bce(hidden, targets, items, negatives, temperature), rel=1e-9
    )


def test_bce_whose_every_negative_is_a_hit_is_the_positive_term_alone(case, monkeypatch) -> None:
    hidden, targets, items = case
    fixed_randint(monkeypatch, targets.tolist())
    loss = binary_cross_entropy_loss(hidden, targets, items)
    positive = F.binary_cross_entropy_with_logits(
        (hidden * items[targets]).sum(-1), torch.ones(N, dtype=hidden.dtype)
    )
    assert loss.item() == pytest.approx(positive.item(), rel=1e-12)


def test_real_draws_never_pick_padding(case) -> None:
    hidden, targets, items = case
    items = items.clone()
    items[0] = float("nan")  # any use of the padding row would make the loss NaN
    torch.manual_seed(0)
    assert torch.isfinite(sampled_softmax_loss(hidden, targets, items, 500, 1.0))
    assert torch.isfinite(binary_cross_entropy_loss(hidden, targets, items, 1.0))
    assert torch.isfinite(full_softmax_loss(hidden, targets, items, 1.0))


# --- through the config ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["softmax", "sampled_softmax", "bce"])
def test_next_item_loss_dispatches_and_gradients_are_finite(case, kind) -> None:
    hidden, targets, items = case
    hidden = hidden.float().requires_grad_(True)
    items = items.float().requires_grad_(True)
    config = LossConfig(kind=kind, negatives=4, temperature=0.5)
    loss = next_item_loss(config, hidden, targets, items)
    assert loss.shape == () and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert torch.isfinite(hidden.grad).all() and torch.isfinite(items.grad).all()
    assert hidden.grad.abs().sum() > 0


@pytest.mark.parametrize("kind", ["softmax", "sampled_softmax", "bce"])
def test_temperature_scales_the_logits(case, kind) -> None:
    """A loss at temperature T on vectors ``h`` equals the loss at temperature 1 on ``h / T``."""
    hidden, targets, items = case
    torch.manual_seed(3)
    scaled = next_item_loss(LossConfig(kind=kind, negatives=4, temperature=0.5), hidden, targets, items)
    torch.manual_seed(3)
    plain = next_item_loss(LossConfig(kind=kind, negatives=4), hidden / 0.5, targets, items)
    assert scaled.item() == pytest.approx(plain.item(), rel=1e-12)


@pytest.mark.parametrize(
    ("values", "field"),
    [({"kind": "bpr"}, "kind"), ({"temperature": 0}, "temperature"), ({"negatives": 0}, "negatives")],
)
def test_loss_config_rejects(values, field) -> None:
    with pytest.raises(ValueError, match=field):
        LossConfig(**values)
