"""Benchmark of prior heads: a backbone with and without them, over seeds, accuracy next to diversity.

    python benchmarks/priors.py --data ../shared/data/ml-100k/raw --out runs/priors-ml100k \\
        --variants none taxonomy horizon --seeds 0 1 2 --set train.threads=1

Each (variant, seed) is one `Recommender.fit` into ``OUT/<variant>-s<seed>`` (a finished run is reused,
so an interrupted benchmark resumes); the table gives test mean ± std over the seeds. Variants:

    none             the backbone's own next-item head
    taxonomy         one head per item category
    events           one head per event type (rating bands on a ratings-only log)
    horizon          short- and long-term heads over the next pred_len items
    clusters         one head per community of the item co-occurrence graph
    taxonomy+horizon the two composed hierarchically

``--steer RUN [RUN ...]`` instead sweeps the head weights of trained runs with prior heads (one run per
seed) and prints each run's accuracy / diversity trade-off on validation and test (and writes
``RUN/steering.png``, and ``RUN/steering.json``, which the next call reuses): with weights
``w_h = share_h^-alpha``, where ``share_h`` is the share of the validation users' top-10 slots head ``h``
fills unsteered, alpha > 0 lifts the heads the model uses least. Each run's operating point is chosen on
validation alone: the alpha with the highest validation entropy@10 among those whose validation NDCG@10
is at least the unsteered one's ("keep accuracy, add variety"); the test metrics at that alpha are then
tabulated over the runs, next to ``--against RUN ...`` (the same backbone without heads, evaluated here
on test so that older runs get every column).

``--merges RUN [RUN ...]`` tabulates the test metrics of trained runs with prior heads under each merge
rule (max, sum, mix) and under the backbone's own next-item scores with the heads switched off: does the
merged list beat the backbone that the heads were trained on?
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import get_args

from grid import fit_seeds, print_table

from intentrec.models.heads import Merge, Steering
from intentrec.recommender import Recommender
from intentrec.storage import write_json

VARIANTS = {
    "none": [],
    "taxonomy": ["taxonomy"],
    "events": ["events"],
    "horizon": ["horizon"],
    "clusters": ["clusters"],
    "taxonomy+horizon": ["taxonomy", "horizon"],
}
COLUMNS = ("ndcg@10", "recall@10", "entropy@10", "coverage@10", "explore_recall@10", "novelty@10")
ALPHAS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", help="dataset path or public name")
    parser.add_argument("--out", help="folder of the runs")
    parser.add_argument("--variants", nargs="+", default=["none", "taxonomy"], choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    parser.add_argument("--steer", nargs="+", type=Path, help="runs with prior heads: steer them instead")
    parser.add_argument(
        "--against", nargs="+", type=Path, default=[], help="with --steer: runs without heads"
    )
    parser.add_argument("--merges", nargs="+", type=Path, help="runs with prior heads: compare merges")
    args = parser.parse_args()
    if args.steer:
        steer(args.steer, args.against)
        return
    if args.merges:
        compare_merges(args.merges)
        return
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --steer RUN, or --merges RUN)")

    variants = {name: [f"heads.priors={json.dumps(VARIANTS[name])}"] for name in args.variants}
    results = fit_seeds(Path(args.out), args.data, variants, args.seeds, args.set, COLUMNS)
    print_table(f"variant ({len(args.seeds)} seeds, test)", results, COLUMNS)


def steer(runs: list[Path], against: list[Path]) -> None:
    results: dict[str, list[dict[str, float]]] = {
        "heads steered, alpha chosen on validation": [],
        "heads unsteered": [],
    }
    for run in runs:
        curve = steering_curve(run)
        alpha = choose_alpha(curve)
        results["heads steered, alpha chosen on validation"].append(curve[alpha]["test"])
        results["heads unsteered"].append(curve[0.0]["test"])
        print(f"\n{run}: alpha chosen on validation = {alpha}\n")
        header = [f"valid {c}" for c in COLUMNS[:3]] + list(COLUMNS)
        print("| alpha | " + " | ".join(header) + " |")
        print("|---" * (len(COLUMNS) + 4) + "|")
        for a, metrics in curve.items():
            valid = " | ".join(f"{metrics['valid'][c]:.4f}" for c in COLUMNS[:3])
            test = " | ".join(f"{metrics['test'][c]:.4f}" for c in COLUMNS)
            print(f"| {a}{' (chosen)' if a == alpha else ''} | {valid} | {test} |")
        plot_curve(run, curve, alpha)

    if against:
        results["no heads"] = [Recommender.load(run).evaluate("test") for run in against]
    print_table(f"test, {len(runs)} runs", results, COLUMNS)


def compare_merges(runs: list[Path]) -> None:
    results: dict[str, list[dict[str, float]]] = {}
    for run in runs:
        recommender = heads_run(run)
        for merge in get_args(Merge):
            steering = Steering(merge=merge)
            results.setdefault(f"heads, {merge} merge", []).append(recommender.evaluate(steering=steering))
        # the backbone's output, trained by the next-item loss next to the heads, ranks items on its own
        recommender.model.heads = None
        results.setdefault("backbone alone (heads off)", []).append(recommender.evaluate())
    print_table(f"test, {len(runs)} runs", results, COLUMNS)


def heads_run(run: Path) -> Recommender:
    """The trained run at ``run``; exits with a message if it has no prior heads."""
    recommender = Recommender.load(run)
    if recommender.model is None or recommender.model.heads is None:
        raise SystemExit(f"{run}: this run has no prior heads")
    return recommender


def steering_curve(run: Path) -> dict[float, dict[str, dict[str, float]]]:
    """Validation and test metrics of ``run`` at every alpha of ``ALPHAS``.

    Kept in ``RUN/steering.json`` and reused from there, so that runs can be swept side by side (one
    process each) and tabulated together afterwards.
    """
    saved = run / "steering.json"
    if saved.is_file():
        curve = {float(alpha): metrics for alpha, metrics in json.loads(saved.read_text()).items()}
        if set(curve) == set(ALPHAS):
            return curve
    recommender = heads_run(run)
    shares = recommender.breakdown("valid")["heads"]
    curve = {}
    for alpha in ALPHAS:
        # a head that never reached a top 10 counts as having filled one slot in 10,000
        weights = {name: max(shares.get(name, 0.0), 1e-4) ** -alpha for name in recommender.model.heads.names}
        steering = Steering(heads=weights)
        curve[alpha] = {on: recommender.evaluate(on, steering=steering) for on in ("valid", "test")}
        print(f"{run} alpha {alpha:4.2f}  valid ndcg@10 {curve[alpha]['valid']['ndcg@10']:.4f}", flush=True)
    write_json(saved, curve)
    return curve


def choose_alpha(curve: dict[float, dict[str, dict[str, float]]]) -> float:
    """The alpha with the most validation entropy@10 that keeps the unsteered validation NDCG@10."""
    floor = curve[0.0]["valid"]["ndcg@10"]
    keeping = [alpha for alpha, metrics in curve.items() if metrics["valid"]["ndcg@10"] >= floor]
    return max(keeping, key=lambda alpha: curve[alpha]["valid"]["entropy@10"])


def plot_curve(run: Path, curve: dict[float, dict[str, dict[str, float]]], chosen: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.6))
    for on, style in (("valid", "s--"), ("test", "o-")):
        points = [(m[on]["entropy@10"], m[on]["ndcg@10"]) for m in curve.values()]
        axes.plot(*zip(*points, strict=True), style, label=on)
    for alpha, metrics in curve.items():
        label = f"α={alpha}" + (" (chosen)" if alpha == chosen else "")
        axes.annotate(label, (metrics["test"]["entropy@10"], metrics["test"]["ndcg@10"]), fontsize=8)
    axes.set_xlabel("category entropy@10 (bits)")
    axes.set_ylabel("NDCG@10")
    axes.set_title(f"Steering the heads of {run.name}")
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(run / "steering.png", dpi=120)
    print(f"wrote {run / 'steering.png'}")


if __name__ == "__main__":
    main()
