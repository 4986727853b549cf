"""Training throughput of one process with several threads against several processes (``torchrun``).

    python benchmarks/processes.py --data ../shared/data/ml-100k/raw --out runs/speed/processes \\
        --layouts 1x1 1x2 2x1 --epochs 3 --rounds 2

Each layout ``PxT`` (P processes of T threads each) fits the same config for ``--epochs`` epochs (no
early stop before them) with ``intentrec fit``, under ``torchrun --standalone`` when P > 1. The layouts
take turns for ``--rounds`` rounds, so a machine whose load changes slows all of them alike. For each,
the median over rounds of the median epoch's training seconds (``history.jsonl``) and the supervised
windows per second, with the speed-up against the first layout; the same epoch with its validation pass
(which process 0 runs with every process's threads while the others wait); and the last epoch's
validation NDCG@10, which is the same in every layout up to float rounding when dropout is 0 (with dropout
each process draws its own masks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--out", required=True, type=Path, help="folder of the runs (replaced)")
    parser.add_argument(
        "--layouts", nargs="+", default=["1x1", "1x2", "2x1"], help="PxT: processes x threads"
    )
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    seconds: dict[str, list[float]] = {layout: [] for layout in args.layouts}
    with_valid: dict[str, list[float]] = {layout: [] for layout in args.layouts}
    last: dict[str, dict] = {}
    for round_ in range(args.rounds):
        for layout in args.layouts:
            processes, threads = (int(part) for part in layout.split("x"))
            run = args.out / f"{layout}-r{round_}"
            shutil.rmtree(run, ignore_errors=True)
            launch = [str(bin_dir / "intentrec")]
            if processes > 1:
                launch = [str(bin_dir / "torchrun"), "--standalone", f"--nproc-per-node={processes}"]
                launch += ["-m", "intentrec"]
            settings = [f"train.epochs={args.epochs}", f"train.min_epochs={args.epochs}"]
            settings += [f"train.threads={threads}", *args.set]
            command = [*launch, "fit", "--data", args.data, "--out", str(run)]
            command += [part for setting in settings for part in ("--set", setting)]
            env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
            done = subprocess.run(command, env=env, capture_output=True, text=True)
            if done.returncode:
                sys.exit(f"{run}: exit {done.returncode}\n{done.stderr[-3000:]}")
            epochs = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]
            seconds[layout].append(statistics.median(epoch["train_seconds"] for epoch in epochs))
            whole = [epoch["train_seconds"] + epoch["valid_seconds"] for epoch in epochs]
            with_valid[layout].append(statistics.median(whole))
            last[layout] = epochs[-1] | {
                "windows": epochs[-1]["windows_per_second"] * epochs[-1]["train_seconds"]
            }
            print(f"{run}: median epoch {seconds[layout][-1]:.2f} s", flush=True)

    first = statistics.median(seconds[args.layouts[0]])
    first_whole = statistics.median(with_valid[args.layouts[0]])
    print("\n| processes x threads | training epoch, s | windows/s | speed-up | with validation, s "
          "| speed-up | valid NDCG@10 |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for layout in args.layouts:
        median, whole = statistics.median(seconds[layout]), statistics.median(with_valid[layout])
        speed = last[layout]["windows"] / median
        print(f"| {layout} | {median:.2f} | {speed:,.0f} | {first / median:.2f}x | {whole:.2f} | "
              f"{first_whole / whole:.2f}x | {last[layout]['valid_ndcg@10']:.4f} |")  # fmt: skip


if __name__ == "__main__":
    main()
