"""Shared tiny builders for the data tests: a RawLog written inline, row by row, as a reader would give it.

The builders are session-scoped factory fixtures (they hold no state), so hypothesis tests can use them.
The public-verb tests (test_recommender.py, test_resume.py) share the synthetic cycle of cyclic_log.py and a
model fitted on it, once per module.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from cyclic_log import cyclic_rows, tiny_config
from intentrec.data.dataset import Dataset
from intentrec.data.filters import FilterConfig
from intentrec.data.raw import RawLog, TimestampKind
from intentrec.recommender import Recommender

#: One interaction: ``(user, item, timestamp)``, optionally followed by ``event`` and ``value``.
Row = Sequence[Any]

# Tests use tiny tensors: more threads only add synchronisation cost, and CI has 2 shared cores.
torch.set_num_threads(1)

RawLogBuilder = Callable[..., RawLog]
DatasetBuilder = Callable[..., Dataset]


def build_raw_log(
    rows: Sequence[Row],
    source: str = "log.csv",
    timestamp_kind: TimestampKind = "unix_seconds",
    items: pl.DataFrame | None = None,
    file: str | None = None,
) -> RawLog:
    """A RawLog whose rows are read in the given order from one file with a header line.

    ``event`` defaults to ``"click"`` and ``value`` to null; row ``i`` is at line ``i + 2`` of ``file``
    (``source`` unless given), the way a CSV reader would locate it.
    """
    defaults = ("click", None)  # event, value
    padded = [(*row, *defaults[len(row) - 3 :]) for row in rows]
    columns = list(zip(*padded, strict=True)) or [()] * 5
    users, item_ids, timestamps, events, values = (list(column) for column in columns)
    interactions = pl.DataFrame(
        {
            "user": users,
            "item": item_ids,
            "timestamp": pl.Series(timestamps, dtype=pl.Int64),
            "event": pl.Series(events, dtype=pl.String),
            "value": pl.Series(values, dtype=pl.Float64),
            "file": pl.Series([file or source] * len(rows), dtype=pl.String),
            "line": pl.int_range(2, len(rows) + 2, dtype=pl.Int64, eager=True),
        }
    )
    return RawLog(
        interactions=interactions.lazy(),
        items=items,
        source=source,
        format="test",
        timestamp_kind=timestamp_kind,
    )


@pytest.fixture(scope="session")
def make_raw_log() -> RawLogBuilder:
    """``make_raw_log(rows, source=, timestamp_kind=, items=, file=)``: see :func:`build_raw_log`."""
    return build_raw_log


@pytest.fixture(scope="session")
def make_dataset() -> DatasetBuilder:
    """``make_dataset(rows, filters=None, categories=None, **options)``: the Dataset of
    ``build_raw_log(rows, **options)``; ``categories`` gives item ``i`` (in index order) its categories."""

    def build(
        rows: Sequence[Row],
        filters: FilterConfig | None = None,
        categories: list[list[str]] | None = None,
        **options: Any,
    ) -> Dataset:
        dataset = Dataset.from_raw(build_raw_log(rows, **options), filters)
        if categories is None:
            return dataset
        items = dataset.items.with_columns(categories=pl.Series(categories, dtype=pl.List(pl.String)))
        return replace(dataset, items=items)

    return build


@pytest.fixture(scope="session")
def csv(tmp_path_factory) -> Path:
    """40 users walking a 20-item cycle, 4..8 events each, with a header ``user,item,timestamp``."""
    rng = np.random.default_rng(0)
    lines = ["user,item,timestamp"]
    for user in range(40):
        start = rng.integers(20)
        lines += [f"u{user},i{(start + t) % 20},{1_600_000_000 + 60 * t}" for t in range(rng.integers(4, 9))]
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


#: ``intentrec(*args, expect=0)``: run the installed command as a user would, check its exit status.
CommandRunner = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def intentrec() -> CommandRunner:
    """The installed ``intentrec`` command in a fresh process; no traceback is ever acceptable."""
    command = Path(sys.executable).parent / "intentrec"

    def run(*args: str | Path, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
        done = subprocess.run(
            [str(command), *map(str, args)], capture_output=True, text=True, env=env, timeout=120
        )
        assert done.returncode == expect, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
        assert "Traceback" not in done.stderr
        return done

    return run


# --- the synthetic cycle of the public-verb tests (cyclic_log.py) -------------------------------------


@pytest.fixture(scope="module")
def cyclic(make_dataset):
    return make_dataset(cyclic_rows(), source="cyclic.csv")


@pytest.fixture(scope="module")
def fitted(cyclic, tmp_path_factory) -> tuple[Recommender, Path]:
    out = tmp_path_factory.mktemp("runs") / "cyclic"
    return Recommender(tiny_config()).fit(cyclic, out=out), out
