"""SASRec's own behaviour; the backbone contract is checked in test_backbone.py."""

from __future__ import annotations

import pytest
import torch
from test_backbone import DIM, random_batch  # pytest puts this folder on sys.path

from intentrec.models.sasrec import SASRec, SASRecConfig, SelfAttention


def test_sasrec_rejects_heads_that_do_not_divide_dim() -> None:
    with pytest.raises(ValueError, match=r"model\.n_heads \(3\) must divide model\.dim \(8\)"):
        SASRecConfig(dim=8, n_heads=3)  # in the config: before any data is read
    with pytest.raises(ValueError, match=r"dim \(8\) must be divisible by n_heads \(3\)"):
        SelfAttention(8, 3, 0.0)


def test_sasrec_reads_histories_longer_than_its_position_table() -> None:
    backbone = SASRec(SASRecConfig(dim=DIM, max_len=4)).eval()
    embeddings, timestamps, mask = random_batch(2, 10)
    assert torch.isfinite(backbone(embeddings, timestamps, mask)).all()


def test_dropout_is_active_in_training_only() -> None:
    torch.manual_seed(0)
    backbone = SASRec(SASRecConfig(dim=DIM, dropout=0.5))
    embeddings, timestamps, mask = random_batch(2, 5)
    backbone.train()
    assert not torch.equal(backbone(embeddings, timestamps, mask), backbone(embeddings, timestamps, mask))
    backbone.eval()
    assert torch.equal(backbone(embeddings, timestamps, mask), backbone(embeddings, timestamps, mask))
