"""Full-ranking evaluation in float32 against bfloat16 (``Recommender.load(run, precision=...)``).

    python benchmarks/precision.py RUN [RUN ...] --repeats 5 --threads 1

For each trained run: the test pass (accuracy metrics only, as ``benchmarks/recbole_speed.py`` times it)
in both precisions, alternated ``--repeats`` times so that a busy machine slows both alike; the median
seconds of each, their ratio, and the test metrics of each (bfloat16 changes scores in the third
significant digit, so a few near-ties swap places).
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import get_args

import torch

from intentrec.models.model import Precision
from intentrec.recommender import Recommender

SHOWN = ("ndcg@10", "recall@10", "recall@50")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="Run folders written by `intentrec fit --out`.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed passes per precision.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    columns = ["run", "backbone", "float32 s", "bfloat16 s", "speed-up", *SHOWN]
    print("| " + " | ".join(columns) + " |  (metrics: float32 / bfloat16)")
    print("|---|---|---|---|---|" + "---|" * len(SHOWN))
    for run in args.runs:
        loaded = {precision: Recommender.load(run, precision=precision) for precision in get_args(Precision)}
        metrics = {p: r.evaluate("test", beyond_accuracy=False) for p, r in loaded.items()}  # also warms up
        seconds: dict[str, list[float]] = {precision: [] for precision in loaded}
        for _ in range(args.repeats):
            for precision, recommender in loaded.items():
                started = time.perf_counter()
                recommender.evaluate("test", beyond_accuracy=False)
                seconds[precision].append(time.perf_counter() - started)
        full, low = (statistics.median(seconds[p]) for p in ("float32", "bfloat16"))
        shown = " | ".join(f"{metrics['float32'][m]:.4f} / {metrics['bfloat16'][m]:.4f}" for m in SHOWN)
        model = loaded["float32"].config.model
        backbone = f"{model.name}, width {model.dim}, {model.max_len} events"
        print(f"| {run} | {backbone} | {full:.3f} | {low:.3f} | {full / low:.2f}x | {shown} |")


if __name__ == "__main__":
    main()
