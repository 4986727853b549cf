"""Training and ranking with freed memory kept for reuse (the default) against glibc's own behaviour.

    python benchmarks/allocator.py --data ../shared/data/ml-100k/raw --models sasrec hstu --rounds 2

Each (model, setting) is a fresh process (the malloc setting is per process, see
:mod:`intentrec.allocator`), ``INTENTREC_MALLOC=keep`` or ``system``, alternated over ``--rounds`` so that
a busy machine weighs on both alike. A process fits ``--epochs`` epochs of the model's default config
(one thread, plus any ``--set``), then times ``--repeats`` full-ranking test passes (accuracy metrics);
it reports the last epoch's training seconds, the median test pass, and the page faults and kernel time
of the whole process (training and passes).
The table gives medians over the rounds and the ratio system / keep (above 1: keeping is faster).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SETTINGS = ("system", "keep")
MARKER = "ALLOCATOR_RESULT "


def child(args: argparse.Namespace) -> None:
    import torch

    from intentrec.config import RunConfig, apply_overrides
    from intentrec.recommender import Recommender

    torch.set_num_threads(1)
    settings = {
        "data": {"path": args.data},
        "model": {"name": args.child},
        "train": {"epochs": args.epochs, "threads": 1, "patience": args.epochs},
    }
    config = RunConfig.from_dict(apply_overrides(settings, args.set), "allocator")
    with tempfile.TemporaryDirectory() as out:
        recommender = Recommender(config).fit(out=Path(out) / "run")
        lines = (Path(out) / "run" / "history.jsonl").read_text().splitlines()
    history = [json.loads(line) for line in lines]
    passes = []
    for _ in range(args.repeats):
        started = time.perf_counter()
        recommender.evaluate("test", beyond_accuracy=False)
        passes.append(time.perf_counter() - started)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result = {
        "epoch_seconds": history[-1]["train_seconds"],
        "test_pass_seconds": statistics.median(passes),
        "page_faults": usage.ru_minflt,
        "kernel_seconds": usage.ru_stime,
    }
    print(MARKER + json.dumps(result), flush=True)


def measure(args: argparse.Namespace, model: str, setting: str) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", model, "--data", args.data, "--epochs", str(args.epochs)]
    command += ["--repeats", str(args.repeats), *(f"--set={change}" for change in args.set)]
    done = subprocess.run(
        command, env={**os.environ, "INTENTREC_MALLOC": setting}, capture_output=True, text=True, check=True
    )
    (line,) = (line for line in done.stdout.splitlines() if line.startswith(MARKER))
    return json.loads(line.removeprefix(MARKER))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default="../shared/data/ml-100k/raw")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. model.max_len=50")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.rounds):
        for model in args.models:
            for setting in SETTINGS:
                results.setdefault((model, setting), []).append(measure(args, model, setting))
    columns = ("epoch_seconds", "test_pass_seconds", "page_faults", "kernel_seconds")
    print("| model | malloc | " + " | ".join(columns) + " |")
    print("|---|---|" + "---|" * len(columns))
    for model in args.models:
        medians = {
            setting: {c: statistics.median(r[c] for r in results[model, setting]) for c in columns}
            for setting in SETTINGS
        }
        for setting in SETTINGS:
            cells = " | ".join(f"{medians[setting][c]:.3g}" for c in columns)
            print(f"| {model} | {setting} | {cells} |")
        ratios = [medians["system"][c] / max(medians["keep"][c], 1e-9) for c in columns]
        print(f"| {model} | system / keep | " + " | ".join(f"{ratio:.2f}x" for ratio in ratios) + " |")


if __name__ == "__main__":
    main()
