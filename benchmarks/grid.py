"""What the benchmarks that train many runs share: fit a config once into its run folder, and tabulate.

A run folder that already holds ``metrics.json`` is reused, so an interrupted benchmark resumes where it
stopped and a table can be printed again without training.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intentrec.config import RunConfig, apply_overrides
from intentrec.recommender import Recommender


def fit_once(run: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The metrics of the run at ``run``, training it first (config = defaults + ``overrides``) if needed."""
    if not (run / "metrics.json").is_file():
        config = RunConfig.from_dict(apply_overrides({}, list(overrides)), "benchmark")
        Recommender(config).fit(out=run)
    return json.loads((run / "metrics.json").read_text(encoding="utf-8"))


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std`` (0 for one value)."""
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.4f} ± {spread:.4f}"


def print_table(label: str, results: dict[str, list[dict[str, float]]], columns: Sequence[str]) -> None:
    """A markdown table: one row per key of ``results`` (a list of test metrics, one per seed)."""
    print(f"\n| {label} | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, runs in results.items():
        print(f"| {name} | " + " | ".join(mean_std([run[c] for run in runs]) for c in columns) + " |")
