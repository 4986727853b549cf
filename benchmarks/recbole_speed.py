"""Speed of IntentRec's SASRec next to RecBole 1.2.1's, in one run, on one machine, on the same data.

    python -m venv .venv-recbole
    .venv-recbole/bin/pip install torch==2.13.0            # first: the CPU build, never an unpinned torch
    .venv-recbole/bin/pip install recbole==1.2.1 'numpy<2' 'pandas<2.2'
    python benchmarks/recbole_speed.py --epochs 3          # from the IntentRec venv, at the repository root

recbole 1.2.1 pulls in its own run-time needs (ray, tensorboard, thop, colorlog, texttable, psutil, ...).
Only ``recbole.quick_start`` imports ray, which then needs setuptools' pkg_resources; this script uses
RecBole's Config, create_dataset, data_preparation, SASRec and Trainer directly and never imports it.

RecBole needs numpy<2 and pandas<2.2, so it lives in its own venv (``--recbole-python``). This process
times IntentRec, then runs ``recbole_speed.py --recbole-side`` with that venv's Python, which times RecBole
and prints its numbers as one JSON line; the table at the end puts both side by side with the ratios
IntentRec / RecBole. Every number is measured in this run and only printed: machines are noisy, so
compare the ratios, within one run.

Data. MovieLens-100K ``u.data`` (``--raw``) is written once as a RecBole atomic file
``<tmp>/ml100k/ml100k.inter`` (user_id:token, item_id:token, rating:float, timestamp:float), and *both*
libraries read that file: 100,000 interactions, 943 users, 1,682 items, nothing filtered on either side
(the script checks the counts agree). The dataset is not called ``ml-100k`` because RecBole replaces the
data_path of a dataset of that name by the copy bundled in its wheel (and adds its own ml-100k.yaml).
Split: leave-one-out on both sides (RecBole ``eval_args: {split: {LS: valid_and_test}, order: TO,
mode: full}``): the last event of each user is the test target, the one before it the validation target.

Model. The same size on both sides: hidden size = ``--dim`` (64), ``--blocks`` (2) Transformer blocks,
``--heads`` (2) heads, at most ``--max-len`` (50) events, GELU feed-forward, dropout ``--dropout`` (0.5)
on embeddings, attention probabilities and residual branches, item embeddings tied with the output, full
softmax cross-entropy over the catalogue (RecBole ``loss_type: CE``, no negative sampling), Adam at lr
``--lr`` (IntentRec: AdamW with weight decay 0 and RecBole's betas (0.9, 0.999), the same update).
IntentRec's feed-forward network is D -> D -> D, so RecBole's ``inner_size`` is set to D (not its default
4D); both models then have exactly the same number of parameters (printed). What cannot match:

* pre-LN (IntentRec: LayerNorm before attention and FFN, a final LayerNorm) vs post-LN (RecBole:
  LayerNorm after each residual sum, and one on the embeddings); the same number of LayerNorms.
* IntentRec scales item embeddings by sqrt(D) and counts positions back from the most recent event;
  RecBole adds absolute positions from the first event of the (right-padded) window.
* IntentRec adds a dropout between the two FFN layers; RecBole's dropout sits after the second only.
* IntentRec computes attention with ``F.scaled_dot_product_attention`` and one fused QKV projection;
  RecBole with explicit matmul + softmax and three projections (the same arithmetic and parameters).
* Initialisation (RecBole: N(0, 0.02) everywhere) and the logit over RecBole's padding item (RecBole's
  softmax has n_items + 1 classes, IntentRec's n_items). Neither matters for speed.

Training unit. RecBole trains one *sample* per interaction: every prefix of a user's training history
(at most ``max_len`` events) with the item after it as the target, so each sample runs the whole Transformer
over up to 50 positions and supervises one of them. IntentRec trains one *window* per user sequence (of at
most ``max_len + 1`` events; longer histories are cut into several) and supervises every position of it.
Both visit every training interaction once per epoch as a target: on ML-100K each epoch supervises the same
97,171 next-item predictions on both sides (100,000 - 3 x 943: each user's validation and test events are
held out and the first event is never a target). So the like-for-like throughput is *supervised target
positions per second*; the raw rate of each side (RecBole samples/s, IntentRec windows/s) is printed too.
Each library trains with its own default batch: ``--batch-size`` IntentRec windows (128, about 5,000
targets on ML-100K) and ``--recbole-batch-size`` RecBole samples (2,048 targets); a RecBole sample being
one target, a batch of 128 would starve it. Throughput is that of the median of ``--epochs`` epochs
(training alone: batching, forward, backward and optimiser step, no validation); the first epoch includes
warm-up, so use >= 3.
IntentRec's figure is read from the run's own records (history.jsonl ``train_seconds`` per epoch and
metrics.json ``timing.windows_per_second``); RecBole's is timed around ``Trainer._train_epoch``.

Evaluation. A full-ranking pass over all test users (943), timed around the library's own evaluation
call; the median of ``--eval-repeats`` passes (default 3: one pass takes well under a second) counts.
The passes alternate between the two processes, IntentRec's then RecBole's (the RecBole process, once
trained, waits for a line on its stdin before each pass), so that a change of load on the machine
weighs on both sides alike; every pass's seconds are printed in the order run.
Both models have been evaluated before the timed passes (IntentRec validates after every epoch; RecBole
evaluates the validation set once as a warm-up). IntentRec: ``Recommender.evaluate("test",
beyond_accuracy=False)``; RecBole: ``Trainer.evaluate(test_data, load_best_model=False)``; both compute
HR, Recall, MRR and NDCG at 1, 5, 10, 20 and 50 and score at most ``--eval-batch-size`` users at once
(IntentRec also keeps a chunk under its default ``eval.chunk_events``, 8,192 padded events, so at 50
events about 160 users; RecBole pads every user to ``--max-len``). With one target per user, IntentRec
reads hits from the target's rank (one comparison per item) instead of a top-50 list. RecBole's
sequential full-sort evaluation never removes a user's past items from the ranking, so IntentRec doesn't
either unless ``--filter-seen`` (its default outside this benchmark). metrics.json's
``timing.eval_users_per_second`` is printed as well; it times IntentRec's test evaluation with the
beyond-accuracy metrics (diversity, novelty, coverage, ...), which RecBole does not compute, so it is not
the number the ratio uses. ``load_best_model=False`` also avoids RecBole's checkpoint reload, which breaks
under torch >= 2.6 (``torch.load`` defaults to ``weights_only=True``); no checkpoint is written.

Threads: ``--threads`` (default 1) in both processes: torch.set_num_threads, and OMP/MKL/OpenBLAS and
Polars thread counts set before those libraries load.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_RAW = REPO.parent / "shared" / "data" / "ml-100k" / "raw"
#: Not "ml-100k": RecBole would read the copy bundled in its wheel instead of our file.
DATASET = "ml100k"
INTER_HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
KS = [1, 5, 10, 20, 50]
RESULT_MARKER = "RECBOLE_SPEED_RESULT "
READY_MARKER = "RECBOLE_SPEED_READY"
PASS_MARKER = "RECBOLE_SPEED_PASS "
#: Command-line settings the RecBole process gets from this one.
SHARED_SETTINGS = (
    "epochs",
    "recbole_batch_size",
    "eval_batch_size",
    "threads",
    "dim",
    "blocks",
    "heads",
    "dropout",
    "max_len",
    "lr",
    "seed",
)


def limit_threads(threads: int) -> None:
    """Thread counts of the native libraries; must run before torch, numpy or polars is imported."""
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "POLARS_MAX_THREADS"):
        os.environ[name] = str(threads)


def write_atomic_file(raw: Path, root: Path) -> tuple[Path, int]:
    """Write ``u.data`` (or ``u.data.gz``) under ``raw`` as ``root/ml100k/ml100k.inter``; return it and
    its number of interactions. The rows are copied as they are, in the same order."""
    plain, packed = raw / "u.data", raw / "u.data.gz"
    if plain.is_file():
        text = plain.read_text(encoding="utf-8")
    elif packed.is_file():
        text = gzip.decompress(packed.read_bytes()).decode("utf-8")
    else:
        raise SystemExit(f"{raw}: neither u.data nor u.data.gz found (give --raw)")
    rows = [line for line in text.splitlines() if line.strip()]
    for line in rows[:5]:
        if len(line.split("\t")) != 4:
            raise SystemExit(f"{raw}: expected 'user<TAB>item<TAB>rating<TAB>timestamp' rows, got {line!r}")
    folder = root / DATASET
    folder.mkdir(parents=True, exist_ok=True)
    inter = folder / f"{DATASET}.inter"
    inter.write_text(INTER_HEADER + "\n".join(rows) + "\n", encoding="utf-8")
    return inter, len(rows)


def timed(evaluate: Callable[[], Any]) -> tuple[float, Any]:
    """Seconds of one call of ``evaluate`` (a full pass), and its result."""
    started = time.perf_counter()
    result = evaluate()
    return time.perf_counter() - started, result


# --- IntentRec ---------------------------------------------------------------------------------------------


def intentrec_side(args: argparse.Namespace, inter: Path, work: Path) -> tuple[dict[str, Any], Any]:
    """Fit IntentRec's SASRec for ``args.epochs`` epochs: its numbers, and the fitted Recommender."""
    import importlib.metadata

    import numpy as np
    import torch

    from intentrec.config import RunConfig
    from intentrec.recommender import Recommender
    from intentrec.training.trainer import training_windows

    torch.set_num_threads(args.threads)
    config = RunConfig.from_dict(
        {
            "data": {"path": str(inter), "format": "recbole"},
            "split": {"kind": "leave_one_out"},
            "model": {
                "name": "sasrec",
                "dim": args.dim,
                "n_blocks": args.blocks,
                "n_heads": args.heads,
                "dropout": args.dropout,
                "max_len": args.max_len,
            },
            "loss": {"kind": "softmax"},
            "train": {
                "epochs": args.epochs,
                "batch_size": args.batch_size,
                "lr": args.lr,
                "betas": [0.9, 0.999],
                "weight_decay": 0.0,
                "patience": args.epochs,  # never stops early
                "lr_decay_patience": None,
                "all_windows": True,
                "seed": args.seed,
                "threads": args.threads,
            },
            "eval": {"ks": KS, "filter_seen": args.filter_seen, "chunk_size": args.eval_batch_size},
        },
        "recbole_speed",
    )
    run = work / "intentrec-run"
    recommender = Recommender(config).fit(out=run)
    dataset, split = recommender.dataset, recommender.split
    assert dataset is not None and split is not None

    # what the trainer iterates over in an epoch: each window supervises every event after its first
    _, _, lengths = training_windows(split.train, args.max_len, horizon=1, all_windows=True)
    n_windows, n_targets = len(lengths), int((lengths - 1).sum())
    history = [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines() if line]
    epoch_seconds = [record["train_seconds"] for record in history]
    median_seconds = statistics.median(epoch_seconds)

    parameters = recommender.metrics["parameters"]
    return {
        "interactions": int(dataset.interactions.height),
        "users": int(dataset.n_users),
        "items": int(dataset.n_items),
        "parameters": int(parameters["backbone"] + parameters["items"] + parameters["heads"]),
        "epochs": len(history),
        "epoch_seconds": epoch_seconds,
        "samples_per_epoch": n_windows,
        "targets_per_epoch": n_targets,
        "samples_per_second": n_windows / median_seconds,
        "recorded_windows_per_second": recommender.metrics["timing"]["windows_per_second"],
        "targets_per_second": n_targets / median_seconds,
        "eval_users": len(split.test),
        "recorded_eval_users_per_second": recommender.metrics["timing"]["eval_users_per_second"],
        "versions": {
            "intentrec": importlib.metadata.version("intentrec"),
            "torch": torch.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
    }, recommender


# --- RecBole (runs in the RecBole venv) --------------------------------------------------------------------


def recbole_side(args: argparse.Namespace) -> dict[str, Any]:
    """Train RecBole's SASRec for ``args.epochs`` epochs, then time one full-sort test evaluation per line
    read from stdin (the IntentRec side asks for them between its own) until stdin ends.

    Runs with the current directory set to a scratch folder: RecBole writes log_tensorboard/ there.
    """
    limit_threads(args.threads)
    import logging
    import warnings

    import numpy as np
    import pandas as pd
    import recbole
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    logging.getLogger().setLevel(logging.WARNING)
    # torch >= 2.4 deprecates the torch.cuda.amp.GradScaler RecBole's trainer builds (disabled on CPU)
    warnings.filterwarnings("ignore", message=r".*GradScaler", category=FutureWarning)
    # RecBole's Config reads every --key=value of sys.argv as a config override: give it none of ours
    sys.argv = sys.argv[:1]
    torch.set_num_threads(args.threads)
    config = Config(
        model="SASRec",
        dataset=DATASET,
        config_dict={
            "data_path": str(args.data_dir),
            "checkpoint_dir": str(Path.cwd() / "saved"),
            "use_gpu": False,
            "seed": args.seed,
            "reproducibility": True,
            "show_progress": False,
            "worker": 0,
            "log_wandb": False,
            # data: the interactions as they are, ordered by time (without TIME_FIELD in load_col,
            # RecBole's default loads only user and item)
            "USER_ID_FIELD": "user_id",
            "ITEM_ID_FIELD": "item_id",
            "TIME_FIELD": "timestamp",
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            "rm_dup_inter": None,
            "val_interval": None,
            "user_inter_num_interval": "[0,inf)",
            "item_inter_num_interval": "[0,inf)",
            "MAX_ITEM_LIST_LENGTH": args.max_len,
            # model
            "n_layers": args.blocks,
            "n_heads": args.heads,
            "hidden_size": args.dim,
            "inner_size": args.dim,  # IntentRec's FFN is D -> D -> D
            "hidden_dropout_prob": args.dropout,
            "attn_dropout_prob": args.dropout,
            "hidden_act": "gelu",
            "loss_type": "CE",
            "train_neg_sample_args": None,
            # training
            "epochs": args.epochs,
            "train_batch_size": args.recbole_batch_size,
            "learner": "adam",
            "learning_rate": args.lr,
            "weight_decay": 0.0,
            # evaluation
            "eval_args": {
                "split": {"LS": "valid_and_test"},
                "group_by": "user",
                "order": "TO",
                "mode": "full",
            },
            "metrics": ["Hit", "Recall", "MRR", "NDCG"],
            "topk": KS,
            "valid_metric": "NDCG@10",
            "eval_batch_size": args.eval_batch_size,  # users per batch for a sequential model
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"], config["reproducibility"])
    model = SASRec(config, train_data._dataset).to(config["device"])
    trainer = Trainer(config, model)

    n_samples = len(train_data._dataset)  # one prefix -> next item sample per training interaction
    epoch_seconds = []
    for epoch in range(args.epochs):
        started = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        epoch_seconds.append(time.perf_counter() - started)
    median_seconds = statistics.median(epoch_seconds)

    trainer.evaluate(valid_data, load_best_model=False, show_progress=False)  # warm-up
    print(READY_MARKER, flush=True)
    seconds, test = [], {}
    for _ in sys.stdin:
        pass_seconds, test = timed(
            lambda: trainer.evaluate(test_data, load_best_model=False, show_progress=False)
        )
        seconds.append(pass_seconds)
        print(f"{PASS_MARKER}{pass_seconds}", flush=True)
    eval_seconds = statistics.median(seconds)
    n_eval = len(test_data._dataset)
    return {
        # the sequential dataset holds the augmented samples (n_u - 1 per user), not the events read
        "interactions": int(dataset.inter_num + dataset.user_num - 1),
        "users": int(dataset.user_num - 1),  # RecBole counts a padding user and item
        "items": int(dataset.item_num - 1),
        "parameters": sum(parameter.numel() for parameter in model.parameters()),
        "epochs": args.epochs,
        "epoch_seconds": epoch_seconds,
        "samples_per_epoch": n_samples,
        "targets_per_epoch": n_samples,
        "samples_per_second": n_samples / median_seconds,
        "targets_per_second": n_samples / median_seconds,
        "eval_users": n_eval,
        "eval_seconds": eval_seconds,
        "eval_users_per_second": n_eval / eval_seconds,
        "test_ndcg@10": float(test["ndcg@10"]),
        "versions": {
            "recbole": recbole.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
            "pandas": pd.__version__,
            "python": platform.python_version(),
        },
        "threads": torch.get_num_threads(),
    }


class RecBoleProcess:
    """:func:`recbole_side` in the RecBole venv, trained and then asked for one test pass at a time."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, work: Path) -> None:
        python = Path(args.recbole_python)
        if not python.is_absolute():
            python = REPO / python  # not resolve(): the venv's python is a symlink to the base interpreter
        if not python.exists():
            raise SystemExit(
                f"{python}: no RecBole Python; create the venv as this script's docstring says "
                "or give --recbole-python"
            )
        scratch = work / "recbole-cwd"
        scratch.mkdir()
        shared = [f"--{name.replace('_', '-')}={getattr(args, name)}" for name in SHARED_SETTINGS]
        script = str(Path(__file__).resolve())
        command = [str(python), script, "--recbole-side", f"--data-dir={data_dir}", *shared]
        env = dict(os.environ)
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(args.threads)
        env.pop("VIRTUAL_ENV", None)
        print(f"RecBole side: {' '.join(command)}", flush=True)
        self.output: list[str] = []  # everything it printed, shown if it fails
        self.process = subprocess.Popen(
            command, cwd=scratch, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self._read_until(READY_MARKER)  # trained

    def _read_until(self, marker: str) -> str:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.output.append(line)
            if line.startswith(marker):
                return line[len(marker) :].strip()
        self.process.wait()
        sys.stdout.write("".join(self.output))
        raise SystemExit(f"the RecBole side failed (exit {self.process.returncode}); its output is above")

    def one_pass(self) -> float:
        """Seconds of one full-ranking test pass."""
        assert self.process.stdin is not None
        self.process.stdin.write("pass\n")
        self.process.stdin.flush()
        return float(self._read_until(PASS_MARKER))

    def finish(self) -> dict[str, Any]:
        """Its numbers, once it has been asked for every pass."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        result = json.loads(self._read_until(RESULT_MARKER))
        self.process.wait()
        return result


# --- report ------------------------------------------------------------------------------------------------


def report(ours: dict[str, Any], theirs: dict[str, Any], args: argparse.Namespace) -> None:
    rows = [
        ("interactions / users / items", "{interactions} / {users} / {items}", None),
        ("parameters", "{parameters}", None),
        ("torch threads", "{threads}", None),
        ("epochs timed (seconds each)", "epoch_seconds", None),
        ("training rows per epoch", "{samples_per_epoch}", None),
        ("supervised targets per epoch", "{targets_per_epoch}", None),
        ("raw rows/s (median epoch)", "samples_per_second", None),
        ("supervised targets/s (median epoch)", "targets_per_second", "targets_per_second"),
        ("test users evaluated", "{eval_users}", None),
        ("full-ranking test pass, s (median)", "eval_seconds", None),
        ("eval users/s", "eval_users_per_second", "eval_users_per_second"),
        ("test NDCG@10 (not a quality comparison)", "test_ndcg@10", None),
    ]

    def cell(values: dict[str, Any], spec: str) -> str:
        if "{" in spec:
            return spec.format(**values)
        value = values[spec]
        if isinstance(value, list):
            return ", ".join(f"{v:.1f}" for v in value)
        return f"{value:.4f}" if abs(value) < 1 else f"{value:,.1f}"

    width = max(len(label) for label, _, _ in rows)
    print()
    print(f"{'':{width}}  {'IntentRec':>24}  {'RecBole':>24}  IntentRec/RecBole")
    for label, spec, ratio_key in rows:
        ratio = f"{ours[ratio_key] / theirs[ratio_key]:.2f}x" if ratio_key else ""
        print(f"{label:{width}}  {cell(ours, spec):>24}  {cell(theirs, spec):>24}  {ratio}")
    print()
    print(
        f"training throughput ratio (supervised targets/s): "
        f"{ours['targets_per_second'] / theirs['targets_per_second']:.2f}x"
    )
    print(
        f"evaluation speed ratio (test users/s, full ranking): "
        f"{ours['eval_users_per_second'] / theirs['eval_users_per_second']:.2f}x"
    )
    print(
        f"IntentRec raw: {ours['samples_per_second']:.1f} windows/s "
        f"(metrics.json windows_per_second {ours['recorded_windows_per_second']:.1f}); "
        f"metrics.json eval_users_per_second with beyond-accuracy metrics "
        f"{ours['recorded_eval_users_per_second']:.1f}"
    )
    print(f"RecBole raw: {theirs['samples_per_second']:.1f} samples/s")
    print(
        "settings: "
        f"dim {args.dim}, blocks {args.blocks}, heads {args.heads}, max_len {args.max_len}, "
        f"dropout {args.dropout}, batch {args.batch_size} windows / {args.recbole_batch_size} samples, "
        f"lr {args.lr}, "
        f"eval batch {args.eval_batch_size} users x {args.eval_repeats} passes, "
        f"filter_seen (IntentRec) {args.filter_seen}"
    )
    print("versions: IntentRec side " + ", ".join(f"{k} {v}" for k, v in ours["versions"].items()))
    print("          RecBole side   " + ", ".join(f"{k} {v}" for k, v in theirs["versions"].items()))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPUs visible, {platform.platform()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--raw", type=Path, default=DEFAULT_RAW, help="folder with MovieLens-100K u.data(.gz)"
    )
    parser.add_argument(
        "--recbole-python",
        default=".venv-recbole/bin/python",
        help="Python of the RecBole venv (relative paths are from the repository root)",
    )
    parser.add_argument("--epochs", type=int, default=3, help="training epochs timed; the median counts")
    parser.add_argument("--batch-size", type=int, default=128, help="IntentRec: windows per step")
    parser.add_argument("--recbole-batch-size", type=int, default=2048, help="RecBole: samples per step")
    parser.add_argument("--eval-batch-size", type=int, default=1024, help="users scored at once, both sides")
    parser.add_argument(
        "--eval-repeats", type=int, default=3, help="full-ranking test passes; the median one counts"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each process")
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--blocks", type=int, default=2)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--dropout", type=float, default=0.5)
    parser.add_argument("--max-len", type=int, default=50)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument(
        "--filter-seen",
        action="store_true",
        help="IntentRec removes history items from the ranking (RecBole's sequential evaluation never does)",
    )
    parser.add_argument("--recbole-side", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.epochs < 1 or args.eval_repeats < 1:
        parser.error("--epochs and --eval-repeats must be at least 1")

    if args.recbole_side:
        print(RESULT_MARKER + json.dumps(recbole_side(args)), flush=True)
        return

    limit_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="recbole-speed-") as tmp:
        work = Path(tmp)
        inter, n_rows = write_atomic_file(args.raw, work)
        print(f"wrote {n_rows} interactions to {inter}", flush=True)
        print("IntentRec side: fitting ...", flush=True)
        ours, recommender = intentrec_side(args, inter, work)
        print(f"IntentRec side done: epochs took {', '.join(f'{s:.1f}' for s in ours['epoch_seconds'])} s")
        recbole = RecBoleProcess(args, work, work)
        # the passes alternate, IntentRec's then RecBole's, so that a change of load weighs on both
        ours_seconds, theirs_seconds, test = [], [], {}
        for _ in range(args.eval_repeats):
            pass_seconds, test = timed(lambda: recommender.evaluate("test", beyond_accuracy=False))
            ours_seconds.append(pass_seconds)
            theirs_seconds.append(recbole.one_pass())
        theirs = recbole.finish()
    ours["eval_seconds"] = statistics.median(ours_seconds)
    ours["eval_users_per_second"] = ours["eval_users"] / ours["eval_seconds"]
    ours["test_ndcg@10"] = test["ndcg@10"]
    pairs = zip(ours_seconds, theirs_seconds, strict=True)
    print("test passes, s, in the order run: " + ", ".join(f"{a:.4f} / {b:.4f}" for a, b in pairs))
    for key in ("interactions", "users", "items"):
        if ours[key] != theirs[key]:
            print(f"WARNING: the two sides read different data: {key} {ours[key]} vs {theirs[key]}")
    if ours["targets_per_epoch"] != theirs["targets_per_epoch"]:
        print(
            f"note: supervised targets per epoch differ: IntentRec {ours['targets_per_epoch']}, "
            f"RecBole {theirs['targets_per_epoch']}"
        )
    report(ours, theirs, args)


if __name__ == "__main__":
    main()
