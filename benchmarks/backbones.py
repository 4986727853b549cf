"""The backbones side by side: the same split, evaluation and training loop, over seeds.

    python benchmarks/backbones.py --data ../shared/data/ml-100k/raw --out runs/backbones-ml100k \\
        --models sasrec hstu gru4rec fuxi --seeds 0 1 2 --set train.threads=1

Each (backbone, seed) is one `Recommender.fit` of the default config with ``model.name`` set, into
``OUT/<backbone>-s<seed>`` (finished runs are reused); the table gives test mean ± std over the seeds, and
the last line says on how many seeds HSTU beats SASRec on NDCG@10.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from grid import fit_seeds, print_table

COLUMNS = ("recall@10", "ndcg@10", "recall@50", "ndcg@50")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--out", required=True, help="folder of the runs")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu", "gru4rec", "fuxi"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    args = parser.parse_args()

    variants = {model: [f"model.name={json.dumps(model)}"] for model in args.models}
    results = fit_seeds(Path(args.out), args.data, variants, args.seeds, args.set, COLUMNS)
    seeds = f"{len(args.seeds)} seed{'s' if len(args.seeds) > 1 else ''}"
    print_table(f"backbone ({seeds}, test)", results, COLUMNS)
    if "sasrec" in results and "hstu" in results:
        pairs = zip(results["hstu"], results["sasrec"], strict=True)
        wins = sum(hstu["ndcg@10"] > sasrec["ndcg@10"] for hstu, sasrec in pairs)
        print(f"\nHSTU above SASRec on test NDCG@10 on {wins} of {len(args.seeds)} seeds")


if __name__ == "__main__":
    main()
