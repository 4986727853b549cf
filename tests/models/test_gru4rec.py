"""GRU4Rec's own behaviour, checked against the GRU equations (the contract: test_backbone.py)."""

from __future__ import annotations

import math

import torch
from test_backbone import DIM, random_batch  # pytest puts this folder on sys.path

from intentrec.config import RunConfig
from intentrec.models.gru4rec import GRU4Rec, GRU4RecConfig, shift_rows


def gru_reference(backbone: GRU4Rec, events: torch.Tensor) -> torch.Tensor:
    """``(n, D)`` real events of one history -> ``(n, D)`` states, one GRU step at a time from h = 0:

    r = σ(W_ir x + b_ir + W_hr h + b_hr),  z = σ(W_iz x + b_iz + W_hz h + b_hz)
    c = tanh(W_ic x + b_ic + r ⊙ (W_hc h + b_hc)),  h' = (1 - z) ⊙ c + z ⊙ h
    """
    gru = backbone.gru
    x = events * math.sqrt(backbone.dim)
    for layer in range(gru.num_layers):
        w_i, w_h = getattr(gru, f"weight_ih_l{layer}"), getattr(gru, f"weight_hh_l{layer}")
        b_i, b_h = getattr(gru, f"bias_ih_l{layer}"), getattr(gru, f"bias_hh_l{layer}")
        h, states = torch.zeros(backbone.dim), []
        for x_t in x:
            i_r, i_z, i_c = (w_i @ x_t + b_i).chunk(3)
            h_r, h_z, h_c = (w_h @ h + b_h).chunk(3)
            r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
            h = (1 - z) * torch.tanh(i_c + r * h_c) + z * h
            states.append(h)
        x = torch.stack(states)  # the next layer reads this layer's states
    return x


def test_states_follow_the_gru_equations_from_each_histories_first_event() -> None:
    torch.manual_seed(0)
    backbone = GRU4Rec(GRU4RecConfig(dim=DIM, n_layers=2, dropout=0.0)).eval()
    embeddings, timestamps, mask = random_batch(4, 7)
    got = backbone(embeddings, timestamps, mask)
    for row in range(4):
        expected = gru_reference(backbone, embeddings[row][mask[row]])
        torch.testing.assert_close(got[row][mask[row]], expected, rtol=1e-5, atol=1e-6)
        assert torch.all(got[row][~mask[row]] == 0)  # padding carries no state


def test_an_empty_history_gives_zeros_not_an_error() -> None:
    backbone = GRU4Rec(GRU4RecConfig(dim=DIM)).eval()
    embeddings, timestamps, mask = random_batch(3, 5)
    mask[1] = False
    embeddings[1] = 0
    hidden = backbone(embeddings, timestamps, mask)
    assert torch.all(hidden[1] == 0) and torch.isfinite(hidden).all()


def test_shift_rows_rotates_each_row_by_its_own_amount() -> None:
    x = torch.arange(8).view(2, 4)
    assert shift_rows(x, torch.tensor([1, 3])).tolist() == [[1, 2, 3, 0], [7, 4, 5, 6]]
    features = torch.arange(16.0).view(2, 4, 2)
    assert torch.equal(
        shift_rows(features, torch.tensor([1, 3]))[..., 0], shift_rows(x * 2.0, torch.tensor([1, 3]))
    )


def test_dropout_is_active_in_training_only_and_the_width_is_the_embedding() -> None:
    torch.manual_seed(0)
    backbone = GRU4Rec(GRU4RecConfig(dim=DIM, dropout=0.5))
    assert backbone.gru.hidden_size == DIM  # tied input/output table: "constrained embedding"
    embeddings, timestamps, mask = random_batch(2, 5)
    backbone.train()
    assert not torch.equal(backbone(embeddings, timestamps, mask), backbone(embeddings, timestamps, mask))
    backbone.eval()
    assert torch.equal(backbone(embeddings, timestamps, mask), backbone(embeddings, timestamps, mask))


def test_gru4rec_ignores_timestamps_and_keeps_the_global_training_defaults() -> None:
    backbone = GRU4Rec(GRU4RecConfig(dim=DIM)).eval()
    embeddings, timestamps, mask = random_batch(2, 5)
    torch.testing.assert_close(
        backbone(embeddings, timestamps, mask), backbone(embeddings, timestamps.flip(1), mask)
    )
    config = RunConfig.from_dict({"model": {"name": "gru4rec"}})
    assert config.loss.kind == "softmax" and config.model.n_layers == 1
