"""Benchmark of the spine: fit a model end to end and print quality, throughput, wall time and memory.

    python benchmarks/spine.py --data ../shared/data/s3rec-seq/Beauty.txt.gz --out runs/bench-beauty

Every number printed is measured in this run (metrics.json of the run folder holds them too); machines are
noisy, so compare throughputs as ratios within one session on one machine.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch

from intentrec.config import RunConfig, apply_overrides
from intentrec.recommender import Recommender


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--format", default=None)
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    args = parser.parse_args()

    overrides = [f"data.path={json.dumps(args.data)}", *args.set]
    if args.format:
        overrides.append(f"data.format={json.dumps(args.format)}")
    config = RunConfig.from_dict(apply_overrides({}, overrides), "benchmark")
    started = time.perf_counter()
    recommender = Recommender(config).fit(out=args.out)
    wall = time.perf_counter() - started
    metrics, timing = recommender.metrics, recommender.metrics["timing"]
    dataset = recommender.dataset
    assert dataset is not None
    print(f"machine: {platform.processor() or platform.machine()}, torch threads {torch.get_num_threads()}")
    print(f"dataset: {dataset.card.name}: {dataset.n_users} users, {dataset.n_items} items")
    print(f"epochs: {metrics['epochs']} (best {metrics['best_epoch']}, stopped: {metrics['stopped']})")
    for split in ("valid", "test"):
        values = metrics[split]
        print(
            f"{split}: "
            + "  ".join(
                f"{k} {values[k]:.4f}" for k in ("ndcg@10", "recall@10", "ndcg@50", "recall@50", "mrr@10")
            )
        )
    print(
        f"wall {wall:.0f} s | train {timing['windows_per_second']:.0f} windows/s (median epoch) | "
        f"eval {timing['eval_users_per_second']:.0f} users/s | peak RSS {timing['peak_memory_mb']:.0f} MB"
    )


if __name__ == "__main__":
    main()
