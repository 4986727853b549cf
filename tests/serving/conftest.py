"""One tiny trained run shared by the serving tests: a learnable cycle over 30 items with categories.

Every user walks ``i0 -> i1 -> ... -> i29 -> i0`` from a random start (as in ``tests/test_recommender.py``),
so a trained model ranks the next item of the cycle first. Items carry titles and categories: ``even`` or
``odd``, and ``three`` for multiples of 3; item ``i29`` has no metadata at all.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from fastapi.testclient import TestClient

from intentrec.config import RunConfig
from intentrec.recommender import Recommender
from intentrec.serving.app import create_app
from intentrec.serving.service import Service

N_ITEMS = 30
TOKEN = "s3cret-token"  # test_app.py sends it


def cyclic_rows(n_users: int = 120, seed: int = 0) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 16)
        rows += [(f"u{user}", f"i{(start + t) % N_ITEMS}", 1_600_000_000 + 60 * t) for t in range(length)]
    return rows


def item_metadata() -> pl.DataFrame:
    described = range(N_ITEMS - 1)
    return pl.DataFrame(
        {
            "item": [f"i{i}" for i in described],
            "title": [f"Item {i}" for i in described],
            "categories": [
                ["even" if i % 2 == 0 else "odd"] + (["three"] if i % 3 == 0 else []) for i in described
            ],
        }
    )


@pytest.fixture(scope="session")
def run(make_dataset, tmp_path_factory) -> Path:
    dataset = make_dataset(cyclic_rows(), source="cyclic.csv", items=item_metadata())
    config = RunConfig.from_dict(
        {
            "model": {"dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 10},
            "train": {"epochs": 6, "batch_size": 64, "lr": 0.01, "threads": 1},
            "eval": {"ks": [1, 10]},
        }
    )
    out = tmp_path_factory.mktemp("runs") / "cyclic"
    Recommender(config).fit(dataset, out=out)
    return out


@pytest.fixture(scope="session")
def asked_run(make_dataset, tmp_path_factory) -> Path:
    """An HSTU whose time bias is measured from the time of the request (model.query_time 'request')."""
    dataset = make_dataset(cyclic_rows(), source="cyclic.csv", items=item_metadata())
    model = {"name": "hstu", "dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 10, "query_time": "request"}
    train = {"epochs": 2, "batch_size": 64, "lr": 0.01, "threads": 1}
    config = RunConfig.from_dict({"model": model, "train": train, "eval": {"ks": [10]}})
    out = tmp_path_factory.mktemp("runs") / "asked"
    Recommender(config).fit(dataset, out=out)
    return out


@pytest.fixture(scope="session")
def recommender(run) -> Recommender:
    return Recommender.load(run)


@pytest.fixture(scope="session")
def service(run) -> Service:
    return Service.load(run)


@pytest.fixture(scope="session")
def client(service) -> TestClient:
    return TestClient(create_app(service))


@pytest.fixture(scope="session")
def locked(service) -> TestClient:
    """A client of the same service behind a bearer token (it sends none by itself)."""
    return TestClient(create_app(service, token=TOKEN))
