"""What the benchmarks that train many runs share: fit a config once into its run folder, and tabulate.

A run folder that already holds ``metrics.json`` is reused, so an interrupted benchmark resumes where it
stopped and a table can be printed again without training; only a run of the same config (but the
settings ``intentrec resume`` may change, such as ``train.max_minutes``), and not one stopped by Ctrl-C.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from intentrec.config import RunConfig, apply_overrides
from intentrec.recommender import Recommender
from intentrec.run import flat_settings, trained_part


def fit_once(run: Path, overrides: Sequence[str]) -> dict[str, Any]:
    """The metrics of the run at ``run``, training it first (config = defaults + ``overrides``) if needed."""
    config = RunConfig.from_dict(apply_overrides({}, list(overrides)), "benchmark")
    if not (run / "metrics.json").is_file():
        Recommender(config).fit(out=run, overwrite=True)  # a run that never finished starts again
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    saved = RunConfig.from_file(run / "config.json")
    differ = flat_settings(trained_part(saved)) ^ flat_settings(trained_part(config))
    if differ:
        keys = ", ".join(sorted({key for key, _ in differ}))
        raise SystemExit(f"{run}: holds a run of another config (it differs in {keys}); move it or use --out")
    if metrics.get("stopped") == "interrupted":
        raise SystemExit(f"{run}: its training was interrupted; `intentrec resume {run}` it or delete it")
    return metrics


def fit_seeds(
    out: Path,
    data: str,
    variants: dict[str, list[str]],
    seeds: Sequence[int],
    overrides: Sequence[str],
    columns: Sequence[str],
) -> dict[str, list[dict[str, float]]]:
    """Every (variant, seed) fitted into ``out/<variant>-s<seed>``: the test metrics per variant, seed order.

    ``variants`` maps a name to its config overrides; ``overrides`` apply to every run. Each run's
    ``columns`` are printed as it finishes.
    """
    results: dict[str, list[dict[str, float]]] = {}
    for variant, own in variants.items():
        for seed in seeds:
            run = out / f"{variant}-s{seed}"
            metrics = fit_once(run, [f"data.path={json.dumps(data)}", *own, f"train.seed={seed}", *overrides])
            results.setdefault(variant, []).append(metrics["test"])
            values = "  ".join(f"{c} {metrics['test'][c]:.4f}" for c in columns)
            stopped = metrics.get("stopped", "?")
            print(f"{run}: best epoch {metrics['best_epoch']} ({stopped})  {values}", flush=True)
    return results


def mean_std(values: Sequence[float]) -> str:
    """``mean ± sample std``, or the value alone when there is one."""
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def print_table(label: str, results: dict[str, list[dict[str, float]]], columns: Sequence[str]) -> None:
    """A markdown table: one row per key of ``results`` (a list of test metrics, one per seed)."""
    print(f"\n| {label} | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for name, runs in results.items():
        print(f"| {name} | " + " | ".join(mean_std([run[c] for run in runs]) for c in columns) + " |")
