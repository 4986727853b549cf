"""Mean ± standard deviation of the test metrics of several runs (e.g. the same config with other seeds).

    python benchmarks/summarize.py runs/beauty-seed0 runs/beauty-seed1 runs/beauty-seed2

Reads each run's metrics.json as written by `intentrec fit`; prints one markdown row per run, then the
mean ± std (sample standard deviation, n - 1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grid import mean_std

METRICS = ("ndcg@10", "recall@10", "ndcg@50", "recall@50")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", type=Path, help="run folders")
    args = parser.parse_args()

    rows = {run: json.loads((run / "metrics.json").read_text(encoding="utf-8")) for run in args.runs}
    print("| run | best epoch | " + " | ".join(f"test {name}" for name in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for run, metrics in rows.items():
        values = " | ".join(f"{metrics['test'][name]:.4f}" for name in METRICS)
        print(f"| {run.name} (seed {_seed(run)}) | {metrics['best_epoch']} | {values} |")
    if len(rows) > 1:
        cells = [mean_std([metrics["test"][name] for metrics in rows.values()]) for name in METRICS]
        print(f"| mean ± std ({len(rows)} runs) | | " + " | ".join(cells) + " |")


def _seed(run: Path) -> int:
    return json.loads((run / "config.json").read_text(encoding="utf-8"))["train"]["seed"]


if __name__ == "__main__":
    main()
