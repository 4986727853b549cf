"""Full-ranking test passes of trained runs, timed under several settings: precision and chunk limits.

    python benchmarks/eval_speed.py RUN [RUN ...] --repeats 5 --precisions float32 bfloat16
    python benchmarks/eval_speed.py RUN [RUN ...] --repeats 5 --chunk-events 1000000000 8192 4096

For each trained run and each setting (every precision, ``Recommender.load(run, precision=...)``, with
every ``eval.chunk_events`` given; none given: the run's own): the test pass that validation runs every
epoch (accuracy metrics only, as ``benchmarks/recbole_speed.py`` times it), or with ``--beyond-accuracy``
the whole test evaluation. The settings take turns ``--repeats`` times, so that a busy machine slows all
alike; the median seconds of each, the speed-up of each against the first, and the test metrics of each:
chunks change no metric, bfloat16 changes scores in the third significant digit (a few near-ties swap).
Speed does not depend on how well a run is trained: a run of one epoch times the same. With
``PYTHONPATH=<worktree of an older commit>/src`` it times that commit's code on the same runs.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from intentrec.recommender import Recommender

SHOWN = ("ndcg@10", "recall@10", "recall@50")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="Run folders written by `intentrec fit --out`.")
    parser.add_argument("--repeats", type=int, default=5, help="Timed passes per setting.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    parser.add_argument("--precisions", nargs="+", default=["float32"], choices=["float32", "bfloat16"])
    parser.add_argument("--chunk-events", type=int, nargs="*", default=[], help="eval.chunk_events values.")
    parser.add_argument("--beyond-accuracy", action="store_true", help="Time the whole test evaluation.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = list(itertools.product(args.precisions, args.chunk_events or [None]))
    columns = ["run", "backbone", "precision", "chunk_events", "s (median)", "speed-up", *SHOWN]
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for run in args.runs:
        loaded = {precision: Recommender.load(run, precision=precision) for precision in args.precisions}
        passes = [(setting, loaded[setting[0]]) for setting in settings]
        beyond = args.beyond_accuracy
        metrics = {setting: one_pass(recommender, setting[1], beyond)[1] for setting, recommender in passes}
        seconds: dict[tuple[str, int | None], list[float]] = {setting: [] for setting in settings}
        for _ in range(args.repeats):  # the first passes above warmed every setting up
            for setting, recommender in passes:
                seconds[setting].append(one_pass(recommender, setting[1], beyond)[0])
        model = loaded[args.precisions[0]].config.model
        backbone = f"{model.name}, width {model.dim}, {model.max_len} events"
        first = statistics.median(seconds[settings[0]])
        for setting in settings:
            median = statistics.median(seconds[setting])
            shown = " | ".join(f"{metrics[setting][name]:.4f}" for name in SHOWN)
            chunk_events = setting[1] if setting[1] is not None else "the run's"
            print(
                f"| {run} | {backbone} | {setting[0]} | {chunk_events} | {median:.3f} | "
                f"{first / median:.2f}x | {shown} |",
                flush=True,
            )


def one_pass(
    recommender: Recommender, chunk_events: int | None, beyond_accuracy: bool
) -> tuple[float, dict[str, float]]:
    """Seconds of one test pass, and its metrics."""
    if chunk_events is not None:
        recommender.config.eval.chunk_events = chunk_events
    started = time.perf_counter()
    metrics = recommender.evaluate("test", beyond_accuracy=beyond_accuracy)
    return time.perf_counter() - started, metrics


if __name__ == "__main__":
    main()
