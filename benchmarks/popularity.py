"""The floor every model must clear: rank items by their number of training interactions.

    python benchmarks/popularity.py --data ../shared/data/ml-100k/raw

Same data loading, split and full-ranking evaluation (seen items filtered) as a default `intentrec fit`.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from intentrec.data.load import DataConfig, load_dataset
from intentrec.data.sequences import PaddedBatch, Sequences
from intentrec.data.split import split_dataset
from intentrec.evaluation.evaluator import EvalConfig, evaluate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    args = parser.parse_args()

    dataset = load_dataset(DataConfig(path=args.data))
    split = split_dataset(dataset)
    counts = torch.from_numpy(np.bincount(split.train.items, minlength=dataset.n_items).astype(np.float32))

    def score(batch: PaddedBatch, histories: Sequences) -> torch.Tensor:
        return counts.expand(len(batch.items), -1).clone()  # clone: the evaluator masks seen items in place

    for name, eval_set in (("valid", split.valid), ("test", split.test)):
        metrics = evaluate(score, eval_set, max_len=1, config=EvalConfig())
        print(
            f"{name}: "
            + "  ".join(f"{k} {metrics[k]:.4f}" for k in ("ndcg@10", "recall@10", "ndcg@50", "recall@50"))
        )


if __name__ == "__main__":
    main()
