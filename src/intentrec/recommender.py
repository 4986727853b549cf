"""The public API: ``Recommender(config).fit(dataset)``, ``.evaluate()``, ``.recommend()``, ``.load(run)``.

A Recommender ties a Dataset, its split and a trained model together and speaks the user's own IDs.
Fitted with an output folder, it writes the run's artefacts as it goes (see :mod:`intentrec.run`), so an
interrupted run still leaves usable weights and ``Recommender.load(folder)`` gives back the same model.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import numpy as np
import polars as pl
import torch

from intentrec.config import RunConfig
from intentrec.data.dataset import Dataset
from intentrec.data.load import load_dataset
from intentrec.data.sequences import PaddedBatch, Sequences
from intentrec.data.split import Split, split_dataset
from intentrec.errors import IntentRecError
from intentrec.evaluation.evaluator import evaluate
from intentrec.models.model import SequentialModel
from intentrec.models.sasrec import SASRec
from intentrec.ranking import ranked_chunks
from intentrec.run import (
    RunFiles,
    load_weights,
    read_metrics,
    save_weights,
    write_history,
    write_metrics,
)
from intentrec.storage import write_json
from intentrec.training.trainer import StateDict, TrainResult, train

log = logging.getLogger("intentrec")


class NotFittedError(IntentRecError):
    """A Recommender was asked to recommend or evaluate before ``fit`` or ``load``."""


class Recommender:
    """A sequential recommender: configure, ``fit``, then ``evaluate`` and ``recommend``.

    Examples
    --------
    >>> rec = Recommender(RunConfig()).fit(out="runs/quickstart")   # doctest: +SKIP
    >>> rec.evaluate("test")["ndcg@10"]                              # doctest: +SKIP
    >>> rec.recommend(users=[1, 2], k=10)                            # doctest: +SKIP
    """

    def __init__(self, config: RunConfig | None = None) -> None:
        self.config = config or RunConfig()
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.model: SequentialModel | None = None
        self.metrics: dict[str, Any] = {}

    # --- training -----------------------------------------------------------------------------------------

    def fit(self, dataset: Dataset | None = None, out: str | Path | None = None) -> Recommender:
        """Train on ``dataset`` (default: the one ``config.data`` names), then measure valid and test.

        With ``out``, the config, dataset, checkpoints, history, log and metrics are written there.
        """
        config = self.config
        started = time.perf_counter()
        self.dataset = dataset if dataset is not None else load_dataset(config.data)
        self.split = split_dataset(self.dataset, config.split)
        self.model = build_model(config, self.dataset.n_items)
        files = RunFiles(Path(out)) if out is not None else None
        if files:
            files.root.mkdir(parents=True, exist_ok=True)
            write_json(files.config, config.to_json())
            self.dataset.save(files.dataset)

        with _log_to(files.log if files else None):
            log.info(
                "fit %s on %s: %d users, %d items, %d training sequences",
                config.model.name,
                self.dataset.card.name,
                self.dataset.n_users,
                self.dataset.n_items,
                len(self.split.train),
            )
            result = train(
                self.model,
                self.split.train,
                config.loss,
                config.train,
                config.model.max_len,
                validate=lambda: self.evaluate("valid"),
                on_epoch_end=(lambda result, state: _checkpoint(files, result, state)) if files else None,
            )
            train_seconds = time.perf_counter() - started
            test_started = time.perf_counter()
            test = self.evaluate("test")
            test_seconds = time.perf_counter() - test_started
            self.metrics = {
                "valid": result.best_valid,
                "test": test,
                "best_epoch": result.best_epoch,
                "epochs": len(result.history),
                "stopped": result.stopped,
                "timing": {
                    "fit_seconds": train_seconds,
                    "windows_per_second": _median(result, "windows_per_second"),
                    "eval_users_per_second": len(self.split.test) / test_seconds,
                    "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                },
            }
            log.info("test %s", _format(test, config.train.monitor))
        if files:
            write_metrics(files.metrics, self.metrics)
        return self

    # --- evaluation and recommendation ---------------------------------------------------------------------

    def evaluate(self, on: Literal["valid", "test"] = "test") -> dict[str, float]:
        """Full-ranking metrics on the validation or test users of the split."""
        model, split = self._fitted()
        eval_set = split.valid if on == "valid" else split.test
        model.eval()
        return evaluate(self._score, eval_set, self.config.model.max_len, self.config.eval)

    def recommend(
        self, users: Sequence[Any] | None = None, k: int = 10, filter_seen: bool = True
    ) -> pl.DataFrame:
        """Top-``k`` items for known users (raw IDs; None = every user), from their whole history.

        Returns a table ``user, rank, item, score`` (rank 1 = best) in the user's own IDs.
        """
        model, _ = self._fitted()
        dataset = self.dataset
        assert dataset is not None  # set together with the model
        history = Sequences.from_frame(dataset.interactions)
        rows = self._rows_of(users, history)
        history = history.subset(rows)
        model.eval()
        parts = []
        for chunk_rows, items, scores in ranked_chunks(
            self._score, history, k, self.config.model.max_len, filter_seen, self.config.eval.chunk_size
        ):
            n, width = items.shape
            parts.append(
                pl.DataFrame(
                    {
                        "row": np.repeat(chunk_rows, width),
                        "user_idx": np.repeat(history.users[chunk_rows], width),
                        "rank": np.tile(np.arange(1, width + 1, dtype=np.int32), n),
                        "item_idx": items.reshape(-1).numpy().astype(np.int32),
                        "score": scores.reshape(-1).numpy(),
                    }
                )
            )
        # chunks come in order of history length: put the users back in the order they were asked for
        table = pl.concat(parts).filter(pl.col("score") > float("-inf")).sort("row", "rank")
        return (
            table.join(dataset.users, on="user_idx", maintain_order="left")
            .join(dataset.items.select("item_idx", "item"), on="item_idx", maintain_order="left")
            .select("user", "rank", "item", "score")
        )

    # --- persistence ---------------------------------------------------------------------------------------

    def save(self, out: str | Path) -> Path:
        """Write config, dataset, weights and metrics to ``out`` (a run folder)."""
        model, _ = self._fitted()
        files = RunFiles(Path(out))
        files.root.mkdir(parents=True, exist_ok=True)
        write_json(files.config, self.config.to_json())
        assert self.dataset is not None
        self.dataset.save(files.dataset)
        save_weights(files.best_weights, model.state_dict())
        write_metrics(files.metrics, self.metrics)
        return files.root

    @classmethod
    def load(cls, run: str | Path) -> Recommender:
        """Load a run folder written by ``fit(out=...)`` or ``save``: the same model on the same data."""
        files = RunFiles(Path(run)).require()
        recommender = cls(RunConfig.from_file(files.config))
        recommender.dataset = Dataset.load(files.dataset)
        recommender.split = split_dataset(recommender.dataset, recommender.config.split)
        recommender.model = build_model(recommender.config, recommender.dataset.n_items)
        recommender.model.load_state_dict(load_weights(files.best_weights))
        recommender.model.eval()
        if files.metrics.is_file():
            recommender.metrics = read_metrics(files.metrics)
        return recommender

    # --- internals -----------------------------------------------------------------------------------------

    def _fitted(self) -> tuple[SequentialModel, Split]:
        if self.model is None or self.split is None:
            raise NotFittedError(
                "this Recommender is not fitted yet: call fit(...) or Recommender.load(run)."
            )
        return self.model, self.split

    def _score(self, batch: PaddedBatch) -> torch.Tensor:
        assert self.model is not None
        return self.model.score_last(torch.from_numpy(batch.items), torch.from_numpy(batch.timestamps))

    def _rows_of(self, users: Sequence[Any] | None, history: Sequences) -> np.ndarray:
        """Rows of ``history`` for raw user IDs, in the order given; unknown IDs are a clear error."""
        if users is None:
            return np.arange(len(history))
        assert self.dataset is not None
        vocabulary = self.dataset.users
        wanted = pl.DataFrame({"user": pl.Series(list(users)).cast(vocabulary["user"].dtype, strict=False)})
        found = wanted.join(vocabulary, on="user", how="left", maintain_order="left")
        unknown = found.filter(pl.col("user_idx").is_null())["user"].to_list()
        if unknown:
            raise IntentRecError(
                f"unknown user id(s) {unknown[:5]}{' ...' if len(unknown) > 5 else ''}: "
                f"not in the dataset this model was trained on ({vocabulary.height} users)."
            )
        position = np.empty(self.dataset.n_users, dtype=np.int64)
        position[history.users] = np.arange(len(history))
        return position[found["user_idx"].to_numpy()]


def build_model(config: RunConfig, n_items: int) -> SequentialModel:
    """The torch module a config describes, with fresh weights."""
    torch.manual_seed(config.train.seed)
    return SequentialModel(SASRec(config.model), n_items, normalize=config.loss.normalize)


def _checkpoint(files: RunFiles, result: TrainResult, state: StateDict) -> None:
    save_weights(files.last_weights, state)
    if result.best_state and result.best_epoch == len(result.history):
        save_weights(files.best_weights, result.best_state)
    write_history(files.history, result.history)


def _median(result: TrainResult, key: str) -> float:
    values = [record[key] for record in result.history]
    return float(np.median(values)) if values else 0.0


def _format(metrics: dict[str, float], first: str) -> str:
    keys = [first] + [key for key in metrics if key != first and key.endswith("@10")]
    return "  ".join(f"{key} {metrics[key]:.4f}" for key in keys)


@contextmanager
def _log_to(path: Path | None) -> Iterator[None]:
    """Copy the ``intentrec`` log into ``path`` for the duration of the block."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        yield
    finally:
        log.removeHandler(handler)
        handler.close()
