"""How close training runs to the hardware: achieved GFLOP/s of training steps next to the matmul peak.

    python benchmarks/compute.py --data ../shared/data/ml-100k/raw --models sasrec hstu --threads 2

For each backbone (the default config, plus any ``--set`` overrides, prior heads included), this times
``--steps`` real training steps (AdamW, the library's own ``train_step`` on the first batches of an
epoch, after ``--warmup`` steps not counted), then counts the floating-point operations of the same
batches with torch's
``FlopCounterMode`` (forward and backward: matrix products and attention, 2 FLOPs per multiply-add;
elementwise work, the optimizer and data preparation are not counted, as is customary, so the figure is a
lower bound on the work done). The peak is the best of several float32 matrix products of 2,048 x 2,048 on
the same number of threads. Nothing is trained to convergence: the speed of a step does not depend on it.
Freed memory is kept for reuse, as in training (:mod:`intentrec.allocator`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_backward_flop_count, sdpa_flop_count

from intentrec.allocator import keep_freed_memory
from intentrec.config import RunConfig, apply_overrides
from intentrec.data.load import load_dataset
from intentrec.data.split import split_dataset
from intentrec.models.build import build_model
from intentrec.models.heads import build_priors
from intentrec.training.trainer import length_bucketed_batches, train_step, training_windows


def _cpu_attention(query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


def _cpu_attention_backward(grad, query, key, value, *args, out_val=None, **kwargs) -> int:
    return sdpa_backward_flop_count(grad, query, key, value)


#: torch counts the CUDA attention kernels but not the CPU one that SASRec's attention runs on
CPU_ATTENTION_FLOPS = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward: _cpu_attention_backward,
}


def matmul_peak_gflops(size: int = 2048, repeats: int = 10) -> float:
    """Best GFLOP/s of ``size x size`` float32 matrix products on torch's current threads."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)  # warm-up: thread pool, page faults
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 / best / 1e9


def measure(config: RunConfig, steps: int, warmup: int) -> dict[str, float]:
    dataset = load_dataset(config.data)
    split = split_dataset(dataset, config.split)
    priors = build_priors(config.heads, dataset, split.train, config.train.seed)
    model = build_model(config, dataset.n_items, dataset.card.timestamp_kind, priors)
    horizon = config.heads.horizon
    max_len = config.model.max_len
    windows, trainable, lengths = training_windows(split.train, max_len, horizon, config.train.all_windows)
    batches = length_bucketed_batches(lengths, config.train.batch_size, np.random.default_rng(0))
    steps = min(steps, len(batches) - warmup)  # a small log has few batches of long windows
    if steps < 1:
        raise SystemExit(f"only {len(batches)} batches in an epoch; ask for fewer --warmup steps")
    timed = [trainable[rows] for rows in batches[warmup : warmup + steps]]
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr, betas=config.train.betas)
    model.train()

    def step(rows: np.ndarray) -> None:
        train_step(model, optimizer, windows, rows, max_len, horizon, config.loss, config.train.precision)

    for rows in batches[:warmup]:
        step(trainable[rows])
    started = time.perf_counter()
    for rows in timed:
        step(rows)
    seconds = time.perf_counter() - started
    counter = FlopCounterMode(display=False, custom_mapping=CPU_ATTENTION_FLOPS)
    with counter:
        for rows in timed:
            step(rows)
    flops = counter.get_total_flops()
    return {
        "windows_per_second": sum(len(rows) for rows in timed) / seconds,
        "gflop_per_step": flops / steps / 1e9,
        "gflops": flops / seconds / 1e9,
        "steps": steps,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", required=True, help="dataset path or public name")
    parser.add_argument("--models", nargs="+", default=["sasrec", "hstu", "gru4rec", "fuxi"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--set", action="append", default=[], help="config override section.key=value")
    parser.add_argument(
        "--precisions", nargs="+", default=["float32"], help="train.precision values, timed one after another"
    )
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    keep_freed_memory()  # as training does (a Recommender sets it)
    peak = matmul_peak_gflops()
    print(f"matmul peak (float32, 2048 x 2048, {args.threads} threads): {peak:.1f} GFLOP/s")
    print(
        "\n| backbone | config | precision | steps | windows/s | GFLOP per step | achieved GFLOP/s "
        "| share of float32 peak |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for name, precision in itertools.product(args.models, args.precisions):
        overrides = [f"data.path={json.dumps(args.data)}", f"model.name={json.dumps(name)}", *args.set]
        overrides.append(f"train.precision={json.dumps(precision)}")
        config = RunConfig.from_dict(apply_overrides({}, overrides), "benchmark")
        result = measure(config, args.steps, args.warmup)
        depth = getattr(config.model, "n_blocks", None) or getattr(config.model, "n_layers", 1)
        shape = f"dim {config.model.dim}, depth {depth}, max_len {config.model.max_len}"
        print(
            f"| {name} | {shape} | {precision} | {result['steps']} | {result['windows_per_second']:.0f} | "
            f"{result['gflop_per_step']:.2f} | {result['gflops']:.1f} | {result['gflops'] / peak:.0%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
