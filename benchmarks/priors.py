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

``--steer RUN`` instead sweeps the head weights of one trained run with prior heads and prints the test
accuracy / diversity trade-off (and writes ``RUN/steering.png``): with weights ``w_h = share_h^-alpha``,
where ``share_h`` is the share of the top-10 slots head ``h`` fills unsteered, alpha > 0 lifts the heads
the model uses least.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grid import fit_seeds, print_table

from intentrec.models.heads import Steering
from intentrec.recommender import Recommender

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
    parser.add_argument("--steer", help="a run with prior heads: print its steering trade-off instead")
    args = parser.parse_args()
    if args.steer:
        steer(Path(args.steer))
        return
    if not args.data or not args.out:
        parser.error("--data and --out are required (or --steer RUN)")

    variants = {name: [f"heads.priors={json.dumps(VARIANTS[name])}"] for name in args.variants}
    results = fit_seeds(Path(args.out), args.data, variants, args.seeds, args.set, COLUMNS)
    print_table(f"variant ({len(args.seeds)} seeds, test)", results, COLUMNS)


def steer(run: Path) -> None:
    recommender = Recommender.load(run)
    assert recommender.model is not None
    if recommender.model.heads is None:
        raise SystemExit(f"{run}: this run has no prior heads to steer")
    shares = recommender.breakdown("test")["heads"]
    names = recommender.model.heads.names
    rows = []
    for alpha in ALPHAS:
        # a head that never reached a top 10 counts as having filled one slot in 10,000
        weights = {name: max(shares.get(name, 0.0), 1e-4) ** -alpha for name in names}
        metrics = recommender.evaluate("test", steering=Steering(heads=weights))
        rows.append((alpha, metrics))
        print(f"alpha {alpha:4.2f}  " + "  ".join(f"{c} {metrics[c]:.4f}" for c in COLUMNS), flush=True)

    print("\n| alpha | " + " | ".join(COLUMNS) + " |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for alpha, metrics in rows:
        print(f"| {alpha} | " + " | ".join(f"{metrics[c]:.4f}" for c in COLUMNS) + " |")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 3.6))
    axes.plot([m["entropy@10"] for _, m in rows], [m["ndcg@10"] for _, m in rows], marker="o")
    for alpha, metrics in rows:
        axes.annotate(f"α={alpha}", (metrics["entropy@10"], metrics["ndcg@10"]), fontsize=8)
    axes.set_xlabel("category entropy@10 (bits)")
    axes.set_ylabel("NDCG@10")
    axes.set_title(f"Steering the heads of {run.name}")
    figure.tight_layout()
    figure.savefig(run / "steering.png", dpi=120)
    print(f"\nwrote {run / 'steering.png'}")


if __name__ == "__main__":
    main()
