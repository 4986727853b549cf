"""Each backbone tuned on validation, then measured on test: a grid of settings, over seeds.

    python benchmarks/tuned.py --data ../shared/data/ml-100k/raw --out runs/tuned-ml100k \\
        --models sasrec hstu --seeds 0 1 2 --set train.threads=1 \\
        --grid 'loss.normalize=false|loss.normalize=true,loss.temperature=0.1' \\
        --grid 'model.dropout=0.2|model.dropout=0.5'

Each ``--grid`` is one axis: alternatives separated by ``|``, each a comma-separated list of overrides
(scalar values only). Every (backbone, setting, seed) is fitted into ``OUT/<backbone>/<setting>-s<seed>``
(finished runs are reused, so several processes, say one per seed, can share the work, and a last call
tabulates once they have all finished: a run without metrics.json is trained again from the start).
For each backbone the setting with the highest mean validation NDCG@10 over the seeds is chosen; the
test metrics of that setting alone make the comparison, so no test number picks a setting.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
from pathlib import Path

from grid import fit_once, mean_std, print_table

COLUMNS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--out", required=True, type=Path, help="folder of the runs")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--grid", action="append", default=[], help="one axis: 'a=1,b=2|a=3,b=4'")
    parser.add_argument("--set", action="append", default=[], help="config override for every run")
    args = parser.parse_args()

    axes = [[alternative.split(",") for alternative in axis.split("|")] for axis in args.grid]
    combinations = _combinations(axes)
    settings = {_name(overrides): overrides for overrides in combinations}
    if len(settings) < len(combinations):
        parser.error("two settings of the grid get the same folder name: name each key only once")
    chosen: dict[str, list[dict[str, float]]] = {}
    for model in args.models:
        valid: dict[str, list[float]] = {}
        test: dict[str, list[dict[str, float]]] = {}
        for name, overrides in settings.items():
            for seed in args.seeds:
                run = args.out / model / f"{name}-s{seed}"
                shared = [f"data.path={json.dumps(args.data)}", f"model.name={json.dumps(model)}"]
                metrics = fit_once(run, [*shared, *overrides, f"train.seed={seed}", *args.set])
                valid.setdefault(name, []).append(metrics["valid"]["ndcg@10"])
                test.setdefault(name, []).append(metrics["test"])
                print(f"{run}: best epoch {metrics['best_epoch']}", flush=True)
        best = max(valid, key=lambda name: statistics.mean(valid[name]))
        print(f"\n{model}: validation NDCG@10 of each setting ({len(args.seeds)} seeds)\n")
        print("| setting | valid ndcg@10 | test ndcg@10 |")
        print("|---|---|---|")
        for name in settings:
            marker = " (chosen)" if name == best else ""
            tested = mean_std([metrics["ndcg@10"] for metrics in test[name]])
            print(f"| {name}{marker} | {mean_std(valid[name])} | {tested} |")
        chosen[f"{model}, {best}"] = test[best]
    print_table(f"backbone at the setting validation chose ({len(args.seeds)} seeds, test)", chosen, COLUMNS)


def _combinations(axes: list[list[list[str]]]) -> list[list[str]]:
    """Every choice of one alternative per axis, as one list of overrides."""
    return [list(itertools.chain.from_iterable(choice)) for choice in itertools.product(*axes)]


def _name(overrides: list[str]) -> str:
    """A folder name for a setting: its overrides without sections, e.g. ``normalize=true+dropout=0.5``."""
    parts = [override.partition("=") for override in overrides]
    return "+".join(key.split(".")[-1] + "=" + value.strip('"') for key, _, value in parts) or "defaults"


if __name__ == "__main__":
    main()
