"""The public API: ``Recommender(config).fit(dataset)``, ``.evaluate()``, ``.recommend()``, ``.load(run)``.

A Recommender ties a Dataset, its split and a trained model together and speaks the user's own IDs.
Fitted with an output folder, it writes the run's artefacts as it goes (see :mod:`intentrec.run`), so an
interrupted run still leaves usable weights and ``Recommender.load(folder)`` gives back the same model.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import polars as pl
import torch

from intentrec.allocator import keep_freed_memory
from intentrec.catalogue import Catalogue, UnknownItems, as_list
from intentrec.config import RunConfig, as_steering
from intentrec.data.dataset import Dataset
from intentrec.data.load import load_dataset
from intentrec.data.sequences import PaddedBatch, Sequences
from intentrec.data.split import Split, split_dataset
from intentrec.errors import ConfigError, DataError, IntentRecError
from intentrec.evaluation.beyond_accuracy import CategoryBreakdown, ItemFeatures
from intentrec.evaluation.evaluator import EvalConfig, evaluate
from intentrec.models.build import build_model, load_backbone, parameter_counts
from intentrec.models.heads import NEXT_ITEM_HEAD, Steering, build_priors
from intentrec.models.model import Precision, SequentialModel
from intentrec.ranking import ScoreFn, ranked_chunks, ranking_table
from intentrec.run import (
    RunFiles,
    load_weights,
    log_to,
    resumable_checkpoint,
    resumed_config,
    save_epoch,
    save_weights,
    stored_metrics,
    write_metrics,
)
from intentrec.storage import write_json
from intentrec.training.processes import join
from intentrec.training.trainer import (
    Checkpoint,
    TrainResult,
    check_continuable,
    ended_training,
    train,
    usable_device,
)

log = logging.getLogger("intentrec")

#: Largest ``(users, items)`` score matrix ranked at once when recommending (floats; 256 MB).
_SCORES_PER_CHUNK = 2**26


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

    def __init__(self, config: RunConfig | dict[str, Any] | None = None) -> None:
        keep_freed_memory()  # trains and ranks faster on a CPU (intentrec.allocator)
        self.config = RunConfig.coerce(config)
        self.dataset: Dataset | None = None
        self.split: Split | None = None
        self.model: SequentialModel | None = None
        self.metrics: dict[str, Any] = {}
        # built from the dataset on first use; fit and load replace the dataset, so they reset these
        self._catalogue: Catalogue | None = None
        self._history: Sequences | None = None
        self._features: ItemFeatures | None = None

    # --- training -----------------------------------------------------------------------------------------

    def fit(
        self, dataset: Dataset | None = None, out: str | Path | None = None, overwrite: bool = False
    ) -> Recommender:
        """Train on ``dataset`` (default: the one ``config.data`` names), then measure valid and test.

        With ``out``, the config, dataset, checkpoints, history, log and metrics are written there: a new
        or empty folder, or one holding a run that ``overwrite`` allows to be replaced. Started by
        ``torchrun``, the processes train together and process 0 alone writes and measures (the others
        return with empty ``metrics``).
        """
        config = self.config
        started = time.perf_counter()
        usable_device(config.train.device)  # before loading anything: a machine without it fails at once
        if out is not None and not str(out).strip():
            raise ConfigError("out is empty: give the folder to write the run to, e.g. runs/first.")
        files = RunFiles(Path(out)).check_new(overwrite) if out is not None else None
        if not join(config.train.device).main:
            files = None
        self.dataset = load_dataset(config.data) if dataset is None else Dataset.require(dataset)
        self._build_model(new=True)
        if config.heads.backbone_from is not None:
            load_backbone(self.model, config, self.dataset)
        if not files:
            return self._train(None, started)
        with files.started(overwrite):  # only now: a mistake in the data or config touches nothing
            write_json(files.config, config.to_json())
            self.dataset.save(files.dataset)
            return self._train(files, started)

    @classmethod
    def resume(cls, run: str | Path, changes: Sequence[str] = ()) -> Recommender:
        """Continue training the run in folder ``run`` from its last whole epoch, as if it had never
        stopped (same batches, negatives and dropout masks), then measure valid and test as ``fit`` does.

        ``changes`` are ``train.key=value`` overrides of the settings in
        :data:`~intentrec.training.trainer.RESUMABLE_SETTINGS` (e.g. a longer ``train.max_minutes``, a
        larger ``train.epochs`` or ``train.patience``); they are saved in the run's config. The timings in
        metrics.json are this session's; ``resumed_at`` lists the epochs training was resumed after.
        """
        started = time.perf_counter()
        files = RunFiles(Path(run)).require()
        checkpoint = resumable_checkpoint(files)
        config = resumed_config(files, checkpoint, changes)
        try:
            check_continuable(checkpoint, config.train)
        except ConfigError as error:
            if files.metrics.is_file():
                raise ConfigError(f"{files.root}: {error}") from None
            # training ended, but not its measurement (a Ctrl-C in the test pass): measure, train nothing
            return cls._measure_trained(files, checkpoint, started)
        usable_device(config.train.device)
        recommender = cls(config)
        recommender.dataset = Dataset.load(files.dataset)
        recommender._build_model()
        if not join(config.train.device).main:
            return recommender._train(None, started, checkpoint)
        write_json(files.config, config.to_json())
        files.metrics.unlink(missing_ok=True)  # they describe weights that are about to change
        return recommender._train(files, started, checkpoint)

    @classmethod
    def _measure_trained(cls, files: RunFiles, checkpoint: Checkpoint, started: float) -> Recommender:
        """Write the metrics of a run whose training ended at ``checkpoint`` but which has none."""
        recommender = cls.load(files.root)
        if join(recommender.config.train.device).main:
            result = ended_training(checkpoint, recommender.config.train)
            with log_to(files.log):
                log.info("%s: trained to epoch %d, not measured: measuring", files.root, checkpoint.epoch)
                recommender._measure(
                    result, parameter_counts(recommender.model), time.perf_counter() - started
                )
            write_metrics(files.metrics, recommender.metrics)
        return recommender

    def _build_model(self, new: bool = False) -> None:
        """Split ``self.dataset`` and build the untrained model the config describes: a ``new`` one to fit
        (its priors checked), or a saved run's, to load its weights into."""
        config, dataset = self.config, self.dataset
        assert dataset is not None
        self._catalogue, self._history, self._features = None, None, None
        self.split = split_dataset(dataset, config.split)
        if not (self.split.train.lengths >= 2).any():  # else training would have no batch at all
            raise DataError(
                f"{dataset.card.source}: the {config.split.kind} split leaves no user two events to train on "
                "(an input and its target); users need more interactions, or a split that keeps more of "
                "theirs for training."
            )
        priors = build_priors(config.heads, dataset, self.split.train, config.train.seed, new)
        self.model = build_model(config, dataset.n_items, dataset.card.timestamp_kind, priors)

    def _train(self, files: RunFiles | None, started: float, resume: Checkpoint | None = None) -> Recommender:
        """Train the built model (from ``resume`` when given), then measure valid and test. Under
        ``torchrun`` process 0 measures, and every process returns once it has written the run."""
        config, model, split = self.config, self.model, self.split
        assert self.dataset is not None and model is not None and split is not None
        group = join(config.train.device)
        with log_to(files.log if files else None):
            log.info(
                "%s %s on %s: %d users, %d items, %d training sequences",
                f"resume after epoch {resume.epoch}:" if resume else "fit",
                config.model.name,
                self.dataset.card.name,
                self.dataset.n_users,
                self.dataset.n_items,
                len(split.train),
            )
            parameters = parameter_counts(model)
            if model.heads is not None:
                log.info(
                    "%d prior heads (%s): %d parameters, %.1f%% of the backbone's %d",
                    len(model.heads.names),
                    ", ".join(model.heads.names),
                    parameters["heads"],
                    100 * parameters["heads"] / parameters["backbone"],
                    parameters["backbone"],
                )
            result = train(
                model,
                split.train,
                config.loss,
                config.train,
                config.model.max_len,
                # early stopping reads accuracy only; the beyond-accuracy metrics come once, at the end
                validate=lambda: self.evaluate("valid", beyond_accuracy=False),
                on_epoch_end=(lambda *epoch_end: save_epoch(files, config, *epoch_end)) if files else None,
                resume=resume,
            )

            def finish() -> None:
                if files:  # once more: an epoch's save cut short by a kill may have left other weights
                    save_weights(files.best_weights, model.state_dict())
                with group.all_threads():
                    self._measure(result, parameters, time.perf_counter() - started)
                if files:
                    write_metrics(files.metrics, self.metrics)

            group.alone(finish)  # the others wait, and end with process 0 if a write fails
        return self

    def _measure(self, result: TrainResult, parameters: dict[str, int], train_seconds: float) -> None:
        """``self.metrics``: valid and test, per category and per head, and how training went."""
        model, split = self._fitted()
        test_started = time.perf_counter()
        test = self.evaluate("test")
        test_seconds = time.perf_counter() - test_started
        self.metrics = {
            "valid": self.evaluate("valid"),
            "test": test,
            "best_epoch": result.best_epoch,
            "epochs": len(result.history),
            "stopped": result.stopped,
            **({"resumed_at": result.resumed_at} if result.resumed_at else {}),
            "parameters": parameters,
            "timing": {
                "fit_seconds": train_seconds,
                "windows_per_second": result.median("windows_per_second"),
                "eval_users_per_second": len(split.test) / test_seconds,
                "peak_memory_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            },
        }
        breakdown = self.breakdown("test")
        self.metrics["test_by_category"] = breakdown["by_category"]
        if model.heads is not None:
            self.metrics["test_heads"] = breakdown["heads"]
        log.info("test %s", _format(self.metrics["test"], self.config.train.monitor))

    # --- evaluation and recommendation ---------------------------------------------------------------------

    def evaluate(
        self,
        on: Literal["valid", "test"] = "test",
        *,
        steering: Steering | dict[str, Any] | None = None,
        beyond_accuracy: bool = True,
        features: ItemFeatures | None = None,
    ) -> dict[str, float]:
        """Full-ranking metrics on the validation or test users of the split: accuracy, then diversity,
        novelty, coverage, personalisation and exploration (:mod:`intentrec.evaluation.beyond_accuracy`).

        ``steering`` re-weights the prior heads (:class:`~intentrec.models.heads.Steering`). ``features``
        gives those metrics other item categories (another taxonomy, learned clusters) than the Dataset's.
        """
        model, split = self._fitted()
        _check_split(on)
        if features is not None and features.categories.shape[0] != self._fitted_dataset().n_items:
            raise ValueError(
                f"features describe {features.categories.shape[0]} items; this model ranks "
                f"{self._fitted_dataset().n_items} (build them with ItemFeatures.regrouped)"
            )
        eval_set = split.valid if on == "valid" else split.test
        model.eval()
        return evaluate(
            self._scores_only(steering),
            eval_set,
            self.config.model.max_len,
            self._eval_config(),
            (features or self._item_features()) if beyond_accuracy else None,
        )

    def breakdown(self, on: Literal["valid", "test"] = "test", k: int = 10) -> dict[str, Any]:
        """What the top ``k`` lists are made of, on the validation or test users.

        Returns ``{"by_category": {category: {"recall@k", "ndcg@k", "users"}}, "heads": {head: share}}``:
        accuracy over the users with a target of each category (most users first), and the share of the
        listed items that each head put there, most first, every prior head included (a model without prior
        heads has the one head ``"next"``).
        """
        model, split = self._fitted()
        _check_k(k)
        _check_split(on)
        eval_set = split.valid if on == "valid" else split.test
        by_category = CategoryBreakdown(self._item_features(), k)
        config = self._eval_config().model_copy(update={"ks": [k]})
        model.eval()
        evaluate(self._scores_only(), eval_set, self.config.model.max_len, config, by_category=by_category)
        listed = self._rank(eval_set.history, k, config.filter_seen, None)["head"].value_counts()
        counts = dict(zip(listed["head"].to_list(), listed["count"].to_list(), strict=True))
        for head in model.heads.names if model.heads is not None else []:  # a head that never fires, at 0
            counts.setdefault(head, 0)
        total = max(sum(counts.values()), 1)
        shares = {head: count / total for head, count in sorted(counts.items(), key=lambda pair: -pair[1])}
        return {"by_category": by_category.results(), "heads": shares}

    def recommend(
        self,
        users: Sequence[Any] | Any | None = None,
        k: int = 10,
        filter_seen: bool = True,
        *,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
        steering: Steering | dict[str, Any] | None = None,
        at: int | None = None,
    ) -> pl.DataFrame:
        """Top-``k`` items for known users (raw IDs, or one ID; None = every user), from their whole history,
        asked for at ``at`` (the log's time unit; default now; read by ``model.query_time = "request"``).

        Returns a table ``user, rank, item, score, head`` (rank 1 = best) in the user's own IDs; ``head``
        names the prior head that put the item there (``"next"`` for a model without prior heads). Only
        items with one of ``include_categories`` (when given) and none of ``exclude_categories`` are
        recommended; a user gets fewer than ``k`` rows when the filters leave fewer items. ``steering``
        re-weights the prior heads (:class:`~intentrec.models.heads.Steering`).
        """
        dataset = self._fitted_dataset()
        _check_k(k)
        history = self.history
        users = as_list(users)  # one user alone, not the characters or digits of its ID
        rows = np.arange(len(history)) if users is None else self.catalogue.require_users(users)
        allowed = self.catalogue.allowed(include_categories, exclude_categories)
        asked = self.catalogue.ask(history.subset(rows), at)
        table = self._rank(asked, k, filter_seen, allowed, steering)
        return table.join(dataset.users, on="user_idx", maintain_order="left").select(
            "user", "rank", "item", "score", "head"
        )

    def recommend_history(
        self,
        items: Sequence[Any],
        k: int = 10,
        *,
        timestamps: Sequence[int] | None = None,
        events: Sequence[str | None] | None = None,
        filter_seen: bool = True,
        include_categories: Sequence[str] | None = None,
        exclude_categories: Sequence[str] | None = None,
        unknown_items: UnknownItems = "ignore",
        steering: Steering | dict[str, Any] | None = None,
        at: int | None = None,
    ) -> pl.DataFrame:
        """Top-``k`` items for someone the model has not seen, from a history they bring (raw item IDs).

        Items (a list, or one item alone) are oldest first, or ordered by ``timestamps`` when given (then
        asked for at ``at``, as in :meth:`recommend`; see :meth:`Catalogue.encode_history`). Items the
        catalogue does not have are left out (``unknown_items="ignore"``, logged) or make it an error
        (``"reject"``).
        Returns a table ``rank, item, score, head``; the filters and steering are those of :meth:`recommend`.
        """
        self._fitted()
        _check_k(k)
        encoded = self.catalogue.encode_history(items, timestamps, events, unknown_items, at)
        if encoded.unknown:
            log.warning("left out unknown item(s) of the history: %s", encoded.unknown)
        allowed = self.catalogue.allowed(include_categories, exclude_categories)
        table = self._rank(encoded.history, k, filter_seen, allowed, steering)
        return table.select("rank", "item", "score", "head")

    # --- what scores are made of ---------------------------------------------------------------------------

    @property
    def catalogue(self) -> Catalogue:
        """The dataset's users and items as lookups (built on first use)."""
        if self._catalogue is None:
            reads_time = self.model is not None and self.model.backbone.reads_request_time
            self._catalogue = Catalogue(self._fitted_dataset(), reads_time)
        return self._catalogue

    @property
    def history(self) -> Sequences:
        """Every user's whole logged history: row ``u`` is dataset user ``u`` (built once, then reused)."""
        if self._history is None:
            history = Sequences.from_frame(self._fitted_dataset().interactions)
            # interactions are sorted by user and every user has some, so rows follow user indices
            assert np.array_equal(history.users, np.arange(len(history)))
            self._history = history
        return self._history

    def user_vectors(self, batch: PaddedBatch) -> torch.Tensor:
        """What items are scored against after the last event of each history: ``(B, D)``, or with prior
        heads one query per head ``(B, H, D)``, scaled so that a head's score is the inner product.

        ``batch`` holds at most the last ``config.model.max_len`` events of each history (``pad_left``), and
        when the model reads the time of the request (``model.query_time = "request"``), its
        ``request_times`` (``Catalogue.ask``).
        """
        return self.user_queries(self.user_states(batch))

    def user_states(self, batch: PaddedBatch) -> torch.Tensor:
        """``(B, D)``: the backbone's state after the last event of each history (the heads read it)."""
        model, _ = self._fitted()
        with torch.inference_mode():
            items, timestamps, request_times = batch.tensors()
            states = model(items, timestamps, last_only=True, request_times=request_times)
        return states.cpu()

    def user_queries(self, states: torch.Tensor) -> torch.Tensor:
        """``(B, D)`` states -> the vectors of :meth:`user_vectors`: the states, or the heads' queries."""
        model, _ = self._fitted()
        if model.heads is None:
            return states
        with torch.inference_mode():
            queries = model.heads.scale() * model.heads(states.to(model.item_embedding.weight.device))
        return queries.cpu()

    def item_vectors(self) -> torch.Tensor:
        """``(n_items, D)``: row ``i`` is dataset item ``i``; score = ``<user vector, item vector>``."""
        model, _ = self._fitted()
        with torch.inference_mode():
            if model.heads is not None:
                return model.heads.items(model.item_embedding.weight)[1:].to("cpu", copy=True)
            return model.output_embeddings()[1:].to("cpu", copy=True)

    # --- persistence ---------------------------------------------------------------------------------------

    def save(self, out: str | Path, overwrite: bool = False) -> Path:
        """Write config, dataset, weights and metrics to ``out``, a new or empty folder (or one holding a
        run, replaced when ``overwrite``)."""
        model, _ = self._fitted()
        with RunFiles(Path(out)).started(overwrite) as files:
            write_json(files.config, self.config.to_json())
            self._fitted_dataset().save(files.dataset)
            save_weights(files.best_weights, model.state_dict())
            write_metrics(files.metrics, self.metrics)
        return files.root

    @classmethod
    def load(cls, run: str | Path, device: str = "cpu", precision: Precision = "float32") -> Recommender:
        """Load a run folder written by ``fit(out=...)`` or ``save``: the same model on the same data,
        ranking on ``device`` (a run trained on a GPU loads on a CPU and the other way round).

        ``precision="bfloat16"`` runs the backbone in bfloat16 when ranking: faster where the hardware has
        bfloat16 arithmetic, with scores that differ from float32's in the third significant digit (so a
        few near-ties swap places); metrics are then no longer exactly those recorded at fit time.
        """
        if precision not in get_args(Precision):
            raise ConfigError(f"precision {precision!r}: expected one of {', '.join(get_args(Precision))}.")
        files = RunFiles(Path(run)).require()
        recommender = cls(RunConfig.from_file(files.config))
        recommender.dataset = Dataset.load(files.dataset)
        recommender._build_model()
        assert recommender.model is not None
        try:
            recommender.model.load_state_dict(load_weights(files.best_weights))
        except RuntimeError as error:  # names or shapes that are not this config's model
            first = str(error).splitlines()[1].strip() if "\n" in str(error) else str(error)
            raise IntentRecError(
                f"{files.best_weights}: not the weights of the model config.json describes ({first} ...)."
            ) from None
        recommender.model.to(usable_device(device, setting="device")).eval()
        recommender.model.inference_dtype = precision
        recommender.metrics = stored_metrics(files)
        return recommender

    # --- internals -----------------------------------------------------------------------------------------

    def _fitted(self) -> tuple[SequentialModel, Split]:
        if self.model is None or self.split is None:
            raise NotFittedError(
                "this Recommender is not fitted yet: call fit(...) or Recommender.load(run)."
            )
        return self.model, self.split

    def _score(
        self, batch: PaddedBatch, histories: Sequences, steering: Steering | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Scores ``(B, n_items)`` of every item after each history (``batch`` the model's input,
        ``histories`` the same users' whole histories), and with prior heads the head each score came from."""
        model, _ = self._fitted()
        items, timestamps, request_times = batch.tensors()
        merge = steering.merge if steering is not None else None
        backbone_weight = None  # the run's
        if model.heads is not None and steering is not None:
            backbone_weight = model.heads.backbone_weight(steering)
        weights = self._head_weights(steering, histories)
        return model.score_last(items, timestamps, weights, merge, backbone_weight, request_times)

    def _eval_config(self) -> EvalConfig:
        """The run's evaluation settings, ``chunk_events`` resolved for the device the model is on."""
        model, _ = self._fitted()
        return self.config.eval.for_device(model.item_embedding.weight.device)

    def _item_features(self) -> ItemFeatures:
        """Categories and training popularity of every item (built on first use)."""
        _, split = self._fitted()
        if self._features is None:
            self._features = ItemFeatures.from_dataset(self._fitted_dataset(), split.train)
        return self._features

    def _scores_only(self, steering: Steering | dict[str, Any] | None = None) -> ScoreFn:
        steering = self._checked(steering)
        return lambda batch, histories: self._score(batch, histories, steering)[0]

    def _checked(self, steering: Steering | dict[str, Any] | None) -> Steering | None:
        """``steering`` (or a dict of its fields, as over HTTP) checked against the heads before ranking."""
        steering = as_steering(steering)
        self._head_weights(steering)
        return steering

    def _head_weights(
        self, steering: Steering | None, histories: Sequences | None = None
    ) -> torch.Tensor | None:
        """``(H,)`` head weights of ``steering``, or ``(B, H)``, one row per whole history of ``histories``,
        when it weighs the heads each user has not met (see :meth:`PriorHeads.head_weights`); None: all 1.
        A ConfigError for a run without heads."""
        model, _ = self._fitted()
        if steering is None:
            return None
        if model.heads is None:
            raise ConfigError("steering weighs prior heads, but this run has none (config heads.priors).")
        if histories is None or steering.unexplored == 1:
            return model.heads.head_weights(steering)
        return model.heads.head_weights(steering, histories)

    def _fitted_dataset(self) -> Dataset:
        self._fitted()
        assert self.dataset is not None  # set together with the model
        return self.dataset

    def _rank(
        self,
        history: Sequences,
        k: int,
        filter_seen: bool,
        allowed: np.ndarray | None,
        steering: Steering | dict[str, Any] | None = None,
    ) -> pl.DataFrame:
        """``user_idx, rank, item, score, head`` for every row of ``history``, rows in order, raw item IDs."""
        model, _ = self._fitted()
        dataset = self._fitted_dataset()
        model.eval()
        steering = self._checked(steering)
        # the (chunk, n_items) score matrix stays under _SCORES_PER_CHUNK floats, whatever the catalogue
        chunk_size = max(1, min(self.config.eval.chunk_size, _SCORES_PER_CHUNK // dataset.n_items))
        heads_of_chunk: list[torch.Tensor | None] = [None]  # which head gave each score in the latest chunk

        def score(batch: PaddedBatch, histories: Sequences) -> torch.Tensor:
            scores, heads_of_chunk[0] = self._score(batch, histories, steering)
            return scores

        chunks = ranked_chunks(
            score,
            history,
            k,
            self.config.model.max_len,
            filter_seen,
            chunk_size,
            allowed,
            self._eval_config().chunk_events,
        )
        # read as each chunk comes: heads_of_chunk then holds that chunk's heads
        table = ranking_table(history, ((*chunk, heads_of_chunk[0]) for chunk in chunks))
        head_names = [*model.heads.names, NEXT_ITEM_HEAD] if model.heads is not None else [NEXT_ITEM_HEAD]
        return table.join(
            dataset.items.select("item_idx", "item"), on="item_idx", maintain_order="left"
        ).with_columns(head=pl.col("head_idx").replace_strict(range(len(head_names)), head_names))


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise ConfigError(f"k = {k!r}: expected a whole number of items, e.g. k=10.")
    if k < 1:
        raise ConfigError(f"k = {k}: ask for at least one item.")


def _check_split(on: str) -> None:
    if on not in ("valid", "test"):
        raise ConfigError(f"on = {on!r}: evaluate on 'valid' or 'test' (the split's held-out events).")


def _format(metrics: dict[str, float], first: str) -> str:
    keys = [first] + [key for key in metrics if key != first and key.endswith("@10")]
    return "  ".join(f"{key} {metrics[key]:.4f}" for key in keys)
