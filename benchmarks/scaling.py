"""Accuracy against context length and against width, for several backbones and seeds.

    python benchmarks/scaling.py --data ../shared/data/ml-100k/raw --out runs/scaling-ml100k \\
        --models sasrec hstu --contexts 50 100 200 --widths 64 128 192 256 --seeds 0 1 2 --set train.threads=1

Two sweeps of the default config: ``model.max_len`` over ``--contexts`` at each backbone's default width,
and ``model.dim`` over ``--widths`` at a context of ``--width-context`` events. Each point is one run per
seed, ``OUT/<backbone>-ctx<L>-d<D>-s<seed>`` (finished runs are reused, and a point both sweeps share is
trained once, so processes that each train some models or seeds fill one folder that a last call with all
of them tabulates). Prints a table of test NDCG@10 / Recall@10 (mean ± std over the seeds) and the
parameter count, and writes ``OUT/scaling.png`` (NDCG@10 against context, and against width; bars: one
std).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

from grid import fit_once, mean_std

from intentrec.config import BACKBONES


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--out", required=True, help="folder of the runs")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu"])
    parser.add_argument("--contexts", nargs="+", type=int, default=[50, 100, 200])
    parser.add_argument("--widths", nargs="+", type=int, default=[64, 128, 192, 256])
    parser.add_argument("--width-context", type=int, default=50)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    args = parser.parse_args()
    out = Path(args.out)

    def point(model: str, context: int, width: int) -> dict:
        """The point's test metrics, one list of values per metric over the seeds, and its parameters."""
        tests = []
        for seed in args.seeds:
            run = out / f"{model}-ctx{context}-d{width}-s{seed}"
            overrides = [
                f"data.path={json.dumps(args.data)}",
                f"model.name={json.dumps(model)}",
                f"model.max_len={context}",
                f"model.dim={width}",
                f"train.seed={seed}",
                *args.set,
            ]
            metrics = fit_once(run, overrides)
            test, parameters = metrics["test"], metrics["parameters"]
            print(
                f"{run}: ndcg@10 {test['ndcg@10']:.4f}  recall@10 {test['recall@10']:.4f}  "
                f"backbone parameters {parameters['backbone']:,}",
                flush=True,
            )
            tests.append(test)
        values = {metric: [test[metric] for test in tests] for metric in ("ndcg@10", "recall@10")}
        return {**values, "parameters": parameters["backbone"] + parameters["items"]}

    by_context: dict[str, list[tuple[int, dict]]] = {}
    by_width: dict[str, list[tuple[int, dict]]] = {}
    for model in args.models:
        default_width = BACKBONES[model]().dim
        by_context[model] = [(c, point(model, c, default_width)) for c in args.contexts]
        by_width[model] = [(w, point(model, args.width_context, w)) for w in args.widths]

    for title, sweep, knob in (
        ("context length (events), default width", by_context, "max_len"),
        (f"width, context {args.width_context}", by_width, "dim"),
    ):
        print(f"\n{title}\n\n| backbone | {knob} | parameters | test NDCG@10 | test Recall@10 |")
        print("|---|---|---|---|---|")
        for model, points in sweep.items():
            for value, test in points:
                print(
                    f"| {model} | {value} | {test['parameters']:,} | {mean_std(test['ndcg@10'])} | "
                    f"{mean_std(test['recall@10'])} |"
                )
    plot(by_context, by_width, args.width_context, out / "scaling.png")


def plot(by_context: dict, by_width: dict, width_context: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6), sharey=True)
    for axes, sweep in ((left, by_context), (right, by_width)):
        for model, points in sweep.items():
            ndcgs = [test["ndcg@10"] for _, test in points]
            means = [statistics.mean(values) for values in ndcgs]
            stds = [statistics.stdev(values) if len(values) > 1 else 0.0 for values in ndcgs]
            knobs = [value for value, _ in points]
            axes.errorbar(knobs, means, yerr=stds, marker="o", capsize=3, label=model)
    left.set_xlabel("context length (events)")
    left.set_ylabel("test NDCG@10")
    left.set_title("context, default width")
    right.set_xlabel("width (embedding size)")
    right.set_title(f"width, context {width_context}")
    left.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
