"""How much a model that reads the time of the request (``model.query_time = "request"``) owes to it.

    python benchmarks/request_time.py RUN [RUN ...]

Each run's test users are ranked again with the request time replaced: the time of the user's first test
target (what the evaluator uses), the time of the last event of the history (what a request sent right
after it would carry: no knowledge of when the target came), and that time plus a day and plus a year.
Prints test NDCG@10 and Recall@10 per run and setting, and the mean over the runs. If the scores at the
last event's time match those at the target's time, the model's accuracy does not come from knowing when
the target happened.
"""

from __future__ import annotations

import argparse
import statistics
from dataclasses import replace

import numpy as np
import torch

from intentrec.evaluation.evaluator import evaluate
from intentrec.recommender import Recommender

DAY = 86_400
#: name -> the request times of the test histories, from (first target times, last event times)
SETTINGS = {
    "first target's time": lambda target, last: target,
    "last event's time": lambda target, last: last,
    "last event + 1 day": lambda target, last: last + DAY,
    "last event + 1 year": lambda target, last: last + 365 * DAY,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("runs", nargs="+", help="Run folders trained with model.query_time='request'.")
    parser.add_argument("--threads", type=int, default=1, help="torch threads.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print("| run | " + " | ".join(SETTINGS) + " |")
    print("|---|" + "---|" * len(SETTINGS))
    ndcg: dict[str, list[float]] = {name: [] for name in SETTINGS}
    for run in args.runs:
        cells = []
        for name, metrics in test_metrics(run).items():
            ndcg[name].append(metrics["ndcg@10"])
            cells.append(f"{metrics['ndcg@10']:.4f} / {metrics['recall@10']:.4f}")
        print(f"| {run} | " + " | ".join(cells) + " |")
    if len(args.runs) > 1:
        print("| mean NDCG@10 | " + " | ".join(f"{statistics.mean(v):.4f}" for v in ndcg.values()) + " |")


def test_metrics(run: str) -> dict[str, dict[str, float]]:
    """Test metrics (accuracy only) of ``run`` under every setting of :data:`SETTINGS`."""
    recommender = Recommender.load(run)
    model = recommender.model
    if model is None or not model.backbone.reads_request_time:
        raise SystemExit(f"{run}: this run does not read the time of the request (model.query_time)")
    model.eval()
    test = recommender.split.test
    history = test.history
    assert history.request_times is not None
    last_event = history.timestamps[history.offsets[1:] - 1]
    results = {}
    for name, times in SETTINGS.items():
        asked = replace(history, request_times=np.asarray(times(history.request_times, last_event)))
        results[name] = evaluate(
            recommender._scores_only(),
            replace(test, history=asked),
            recommender.config.model.max_len,
            recommender._eval_config(),
        )
    return results


if __name__ == "__main__":
    main()
