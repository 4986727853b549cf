"""The learnable synthetic log of the public-verb tests: users walk the cycle ``i0 -> i1 -> ... -> i29 -> i0``
from a random start, so a working model must place the next item first; and the tiny config that learns it.
The fixtures built from them (``cyclic``, ``fitted``) are in conftest.py.
"""

from __future__ import annotations

import numpy as np

from intentrec.config import RunConfig

N_ITEMS = 30


def cyclic_rows(n_users: int = 200, seed: int = 0) -> list[tuple[str, str, int]]:
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 16)  # < N_ITEMS: the next item is unseen
        rows += [(f"u{user}", f"i{(start + t) % N_ITEMS}", 1_600_000_000 + 60 * t) for t in range(length)]
    return rows


def tiny_config(**train) -> RunConfig:
    return RunConfig.from_dict(
        {
            "model": {"dim": 16, "n_blocks": 1, "dropout": 0.0, "max_len": 10},
            "train": {"epochs": 8, "batch_size": 64, "lr": 0.01, "threads": 1, **train},
            "eval": {"ks": [1, 10]},
        }
    )
