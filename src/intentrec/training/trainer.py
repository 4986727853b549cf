"""The training loop: length-bucketed batches, AdamW, early stopping on a validation metric.

Every epoch visits every training event once: sequences longer than the model's window are cut into
windows of ``max_len + 1`` events (``all_windows``; the SASRec paper kept only the most recent one), and
every position is supervised with the next event. Batches group sequences of similar length so that
padding costs little; the order of batches is shuffled. After each epoch the model is evaluated on the
validation set; the learning rate drops on a plateau, the best weights are kept, and training stops after
``patience`` epochs without improvement. Neither happens before ``min_epochs``: a model's first epoch
often learns item popularity, and validation then dips for a few epochs while it learns from the
sequences; counting that dip as a plateau cut the learning rate and stopped training at the popularity
level (SASRec on MovieLens latest-small, BENCHMARKS.md).
Ctrl-C stops training cleanly: the best and the last weights stay usable. After every epoch a
:class:`Checkpoint` holds everything the next epoch depends on (weights, optimiser moments, plateau
counters, random generators), so a run cut by ``max_minutes``, Ctrl-C or a crash continues from its last
whole epoch exactly as if it had never stopped. Started by ``torchrun``, several processes share each
batch (``training/processes.py``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any

import numpy as np
import torch
from pydantic import Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from intentrec.data.sequences import PAD, Sequences, training_batch
from intentrec.errors import ConfigError
from intentrec.models.head_losses import prior_heads_loss
from intentrec.models.model import Precision, SequentialModel
from intentrec.settings import Settings
from intentrec.training.losses import LossConfig, next_item_loss
from intentrec.training.processes import Group, join

log = logging.getLogger("intentrec")

#: Tensors of the model (name -> tensor), as written to a checkpoint.
StateDict = dict[str, torch.Tensor]


#: An AdamW beta: a moment's decay per step, in [0, 1).
Beta = Annotated[float, Field(ge=0, lt=1)]


class TrainConfig(Settings):
    """Optimisation and stopping."""

    epochs: int = Field(200, ge=1, description="Upper bound on epochs; early stopping usually ends first.")
    batch_size: int = Field(128, ge=1, description="Sequences per batch.")
    lr: float = Field(2e-3, gt=0, description="AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    betas: tuple[Beta, Beta] = Field((0.9, 0.98), description="AdamW betas.")
    patience: int = Field(5, ge=1, description="Stop after this many epochs without validation gain.")
    min_epochs: int = Field(
        10, ge=1, description="No early stop and no learning-rate cut before the end of this epoch."
    )
    lr_decay_patience: int | None = Field(
        2,
        ge=1,
        description="Multiply the lr by lr_decay_factor after this many epochs without gain (None: never).",
    )
    lr_decay_factor: float = Field(0.3, gt=0, lt=1, description="Learning-rate reduction on a plateau.")
    all_windows: bool = Field(
        True, description="Train on every max_len window of long sequences, not only the most recent one."
    )
    monitor: str = Field("ndcg@10", description="Validation metric that selects the best epoch.")
    seed: int = Field(0, ge=0, lt=2**32, description="Seeds weights, batch order and negative sampling.")
    threads: int | None = Field(None, ge=1, description="torch CPU threads (None: torch's default).")
    max_minutes: float | None = Field(
        None, gt=0, description="Stop after this wall time (counted anew when a run is resumed)."
    )
    device: str = Field(
        "cpu", description="Where the model trains and ranks: 'cpu', 'cuda', 'cuda:1', 'mps'."
    )
    precision: Precision = Field(
        "float32",
        description="Arithmetic of the forward pass and the loss: 'bfloat16' runs them under torch's "
        "autocast (weights, gradients and the optimiser stay float32).",
    )
    resumable: bool = Field(
        True,
        description="Keep a checkpoint of the last whole epoch (weights, optimiser moments, random state: "
        "about 3-4x the weights on disk) so that the run can be resumed.",
    )


#: The settings a resumed run may change; the others are part of what was trained.
RESUMABLE_SETTINGS = ("epochs", "max_minutes", "patience", "threads", "device")


@dataclass
class TrainResult:
    best_epoch: int = 0
    best_valid: dict[str, float] = field(default_factory=dict)
    history: list[dict[str, float]] = field(default_factory=list)
    stopped: str = "max_epochs"  # max_epochs | early_stopping | time_limit | interrupted | diverged
    best_state: StateDict = field(default_factory=dict)
    resumed_at: list[int] = field(default_factory=list)  # the epochs after which training was resumed

    def median(self, key: str) -> float:
        """The median over epochs of a record's ``key`` (0 before any epoch)."""
        values = [record[key] for record in self.history]
        return float(np.median(values)) if values else 0.0


@dataclass
class Checkpoint:
    """The end of an epoch, complete enough to continue training from it.

    ``tensors``: ``model.*`` the weights, ``best.*`` the best weights (only when an earlier epoch was
    best), ``optimizer.<param>.<name>`` AdamW's moments and step, ``rng.*`` torch's generator states.
    ``meta`` (JSON): the epoch, the record so far, the optimiser's groups (lr, betas), the plateau's
    counters, the state of the generator that shuffles the batches and how many processes trained.
    """

    tensors: StateDict
    meta: dict[str, Any]

    @property
    def epoch(self) -> int:
        return self.meta["epoch"]


def set_seed(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)


def usable_device(name: str, setting: str = "train.device") -> torch.device:
    """``torch.device(name)``, or a ConfigError naming ``setting`` when torch does not know the name or
    this machine has no such device."""
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(
            f"{setting} {name!r}: not a torch device; expected e.g. 'cpu', 'cuda' or 'cuda:1'."
        ) from None
    usable = {
        "cpu": True,
        "cuda": torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count(),
        "mps": torch.backends.mps.is_available(),
    }.get(device.type, False)
    if not usable:
        raise ConfigError(f"{setting} {name!r}: this machine has no such device; use 'cpu'.")
    return device


def length_bucketed_batches(
    lengths: np.ndarray, batch_size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Rows grouped into batches of similar length, in random order.

    Rows are shuffled, cut into pools of 64 batches, sorted by length inside each pool and cut into batches;
    the batch order is then shuffled. This keeps the randomness of SGD while most batches need little padding.
    """
    rows = rng.permutation(len(lengths))
    pool = batch_size * 64
    batches = []
    for start in range(0, len(rows), pool):
        chunk = rows[start : start + pool]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    return [batches[i] for i in rng.permutation(len(batches))]


def train(
    model: SequentialModel,
    sequences: Sequences,
    loss_config: LossConfig,
    config: TrainConfig,
    max_len: int,
    validate: Callable[[], dict[str, float]],
    on_epoch_end: Callable[[TrainResult, StateDict, Checkpoint | None], None] | None = None,
    resume: Checkpoint | None = None,
) -> TrainResult:
    """Train ``model`` in place on next-item prediction over ``sequences``; return what happened.

    ``validate()`` returns validation metrics (it must contain ``config.monitor``); ``on_epoch_end`` is
    called after every epoch with the result so far, the current weights and, with ``config.resumable``,
    the checkpoint to continue from (None when Ctrl-C cut an epoch short: its weights are saved as the
    last ones, but training resumes from the end of the epoch before). ``resume`` continues from such a
    checkpoint (see :func:`check_continuable`). On return the model holds the best weights. Under
    ``torchrun`` only process 0 validates and calls ``on_epoch_end``.
    """
    group = join(config.device)
    set_seed(config.seed)
    if config.threads:
        torch.set_num_threads(config.threads)
    model.to(usable_device(config.device))
    rng = np.random.default_rng(config.seed)
    # heads fitted on a trained run's backbone (heads.backbone_from) leave it and the item table as they are
    frozen = model.heads is not None and model.heads.config.backbone_from is not None
    if frozen:
        model.backbone.requires_grad_(False)
        model.item_embedding.requires_grad_(False)
    optimizer = torch.optim.AdamW(
        [parameter for parameter in model.parameters() if parameter.requires_grad],
        lr=config.lr,
        betas=config.betas,
        weight_decay=config.weight_decay,
    )
    # ReduceLROnPlateau reduces once the epochs without gain exceed its patience, hence the - 1
    plateau = (
        torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer,
            mode="max",
            factor=config.lr_decay_factor,
            patience=config.lr_decay_patience - 1,
            threshold=0,  # any gain counts, as it does for the best epoch and early stopping
        )
        if config.lr_decay_patience
        else None
    )
    if plateau:  # its cooldown ignores epochs without gain (and tracks the best) until min_epochs
        plateau.cooldown_counter = config.min_epochs - 1
    horizon = model.heads.horizon if model.heads is not None else 1
    sequences, trainable, lengths = training_windows(sequences, max_len, horizon, config.all_windows)
    result = TrainResult()
    first_epoch = 1
    if resume is not None:
        check_continuable(resume, config)
        _restore(resume, model, optimizer, plateau, rng, result)
        first_epoch = resume.epoch + 1
        trained_in = resume.meta.get("processes", 1)  # checkpoints of earlier versions: one process
        if trained_in != group.size:
            log.warning(
                "resumed in %d process(es), trained in %d: the same batches and steps, but not the dropout "
                "masks and negatives of an uninterrupted run",
                group.size,
                trained_in,
            )
    started = time.perf_counter()
    progress = Progress(
        TextColumn("epoch {task.fields[epoch]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}  {task.fields[speed]:.0f} windows/s"),
        TimeElapsedColumn(),
        transient=True,
        disable=not group.main,
    )
    try:
        with progress:
            for epoch in range(first_epoch, config.epochs + 1):
                batches = length_bucketed_batches(lengths, config.batch_size, rng)
                if group.size > 1:  # each process its own dropout masks, a function of (seed, epoch, rank)
                    torch.manual_seed(
                        int(np.random.SeedSequence([config.seed, epoch, group.rank]).generate_state(1)[0])
                    )
                task = progress.add_task("train", total=len(batches), epoch=epoch, loss=0.0, speed=0.0)
                epoch_start = time.perf_counter()
                model.train()
                if frozen:  # the heads learn from the states they will read at inference: no dropout
                    model.backbone.eval()
                total_loss = 0.0
                for step, batch_rows in enumerate(batches, 1):
                    loss = train_step(
                        model,
                        optimizer,
                        sequences,
                        trainable[batch_rows[group.rank :: group.size]],  # this process's share
                        max_len,
                        horizon,
                        loss_config,
                        config.precision,
                        group,
                    )
                    total_loss += loss
                    if not math.isfinite(loss):  # the weights are lost: no step after this one helps
                        break
                    speed = step * config.batch_size / (time.perf_counter() - epoch_start)
                    progress.update(task, advance=1, loss=total_loss / step, speed=speed)
                progress.remove_task(task)
                if not math.isfinite(total_loss):  # the batch's loss, the same in every process
                    result.stopped = "diverged"
                    _diverged(epoch, result, config)
                    break
                train_seconds = time.perf_counter() - epoch_start
                with group.all_threads():
                    valid = group.from_main(_evaluate(model, validate) if group.main else {})
                record = {
                    "epoch": epoch,
                    "loss": total_loss / len(batches),
                    "train_seconds": train_seconds,
                    "windows_per_second": len(trainable) / train_seconds,
                    "valid_seconds": time.perf_counter() - epoch_start - train_seconds,
                    "lr": optimizer.param_groups[0]["lr"],
                    **{f"valid_{name}": value for name, value in valid.items()},
                }
                result.history.append(record)
                improved = valid[config.monitor] > result.best_valid.get(config.monitor, -1.0)
                if improved:
                    result.best_epoch, result.best_valid = epoch, valid
                    result.best_state = _copy_state(model)
                log.info(
                    "epoch %d  loss %.4f  %s %.4f%s  %.0f windows/s",
                    epoch,
                    record["loss"],
                    config.monitor,
                    valid[config.monitor],
                    "  (best)" if improved else "",
                    record["windows_per_second"],
                )
                if plateau:
                    plateau.step(valid[config.monitor])

                def save() -> None:
                    assert on_epoch_end is not None
                    checkpoint = (
                        _checkpoint(model, optimizer, plateau, rng, result, group.size)
                        if config.resumable
                        else None
                    )
                    on_epoch_end(result, model.state_dict(), checkpoint)

                # in every process: a write that fails in process 0 ends them all
                group.alone(save if on_epoch_end else None)
                if epoch >= config.min_epochs and epoch - result.best_epoch >= config.patience:
                    result.stopped = "early_stopping"
                    break
                elapsed = time.perf_counter() - started
                if group.from_main(config.max_minutes is not None and elapsed > 60 * config.max_minutes):
                    result.stopped = "time_limit"
                    break
    except KeyboardInterrupt:
        if not result.best_epoch:  # no epoch finished: nothing to keep or measure
            raise
        result.stopped = "interrupted"
        log.warning("interrupted: keeping the best weights so far (epoch %d)", result.best_epoch)
        if on_epoch_end and group.main:
            on_epoch_end(result, model.state_dict(), None)
    if result.best_state:
        model.load_state_dict(result.best_state)
    model.eval()
    return result


def _diverged(epoch: int, result: TrainResult, config: TrainConfig) -> None:
    """Say that training lost its numbers in ``epoch``: the run keeps its best epoch before it, or, when
    there is none, ends with a ConfigError (weights that are NaN would only rank at random)."""
    advice = f"lower train.lr (now {config.lr:g})"
    if config.precision != "float32":
        advice += ", or train in float32"
    if not result.best_epoch:
        raise ConfigError(f"training diverged in epoch {epoch} (the loss is not a number): {advice}.")
    log.error(
        "training diverged in epoch %d (the loss is not a number): stopped, keeping epoch %d's weights; %s",
        epoch,
        result.best_epoch,
        advice,
    )


def ended_training(checkpoint: Checkpoint, config: TrainConfig) -> TrainResult:
    """The record of a training that ``config`` does not continue past ``checkpoint`` (it reached
    ``epochs``, or ``patience`` epochs without gain); the best weights are the run's, not held here."""
    meta = checkpoint.meta
    return TrainResult(
        best_epoch=meta["best_epoch"],
        best_valid=meta["best_valid"],
        history=list(meta["history"]),
        stopped="max_epochs" if checkpoint.epoch >= config.epochs else "early_stopping",
        resumed_at=list(meta["resumed_at"]),
    )


def check_continuable(checkpoint: Checkpoint, config: TrainConfig) -> None:
    """Raise a ConfigError saying what to raise when ``config`` would stop a run at once after the
    checkpoint's epoch (it reached ``epochs``, or ``patience`` epochs without gain), or when the checkpoint
    cannot be continued at all."""
    epoch, best = checkpoint.epoch, checkpoint.meta["best_epoch"]
    if "model.backbone.bias.position" in checkpoint.tensors:
        raise ConfigError(
            "the run was saved when HSTU's blocks shared one relative attention bias; it still loads, "
            "evaluates and serves as it was trained, but its optimiser state does not fit today's HSTU "
            "(a bias per block): fit it anew to train further."
        )
    if epoch >= config.epochs:
        raise ConfigError(
            f"the run has trained {epoch} epoch{'s' * (epoch != 1)}, train.epochs = {config.epochs}; "
            "raise train.epochs to continue it."
        )
    if epoch >= config.min_epochs and epoch - best >= config.patience:
        raise ConfigError(
            f"the run stopped early: {epoch - best} epochs without gain after its best (epoch {best}), "
            f"train.patience = {config.patience}; raise train.patience to continue it."
        )


def _checkpoint(
    model: SequentialModel,
    optimizer: torch.optim.Optimizer,
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None,
    rng: np.random.Generator,
    result: TrainResult,
    processes: int,
) -> Checkpoint:
    epoch = len(result.history)
    tensors = {f"model.{name}": tensor for name, tensor in model.state_dict().items()}
    if result.best_epoch != epoch:
        tensors |= {f"best.{name}": tensor for name, tensor in result.best_state.items()}
    optimizer_state = optimizer.state_dict()
    for param, state in optimizer_state["state"].items():
        tensors |= {f"optimizer.{param}.{name}": torch.as_tensor(value) for name, value in state.items()}
    tensors["rng.torch"] = torch.get_rng_state()
    device = next(model.parameters()).device
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state(device)
    meta = {
        "epoch": epoch,
        "best_epoch": result.best_epoch,
        "best_valid": result.best_valid,
        "history": result.history,
        "resumed_at": result.resumed_at,
        "optimizer": optimizer_state["param_groups"],
        "plateau": plateau.state_dict() if plateau else None,
        "batch_order": rng.bit_generator.state,
        "processes": processes,
    }
    return Checkpoint(tensors, meta)


def _restore(
    checkpoint: Checkpoint,
    model: SequentialModel,
    optimizer: torch.optim.Optimizer,
    plateau: torch.optim.lr_scheduler.ReduceLROnPlateau | None,
    rng: np.random.Generator,
    result: TrainResult,
) -> None:
    tensors, meta = checkpoint.tensors, checkpoint.meta
    weights = _with_prefix(tensors, "model.")
    model.load_state_dict(weights)
    moments: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in _with_prefix(tensors, "optimizer.").items():
        param, _, key = name.partition(".")
        moments.setdefault(int(param), {})[key] = tensor
    optimizer.load_state_dict({"state": moments, "param_groups": meta["optimizer"]})
    if plateau:
        plateau.load_state_dict(meta["plateau"])
    rng.bit_generator.state = meta["batch_order"]
    torch.set_rng_state(tensors["rng.torch"])
    device = next(model.parameters()).device
    if device.type == "cuda" and "rng.cuda" in tensors:
        torch.cuda.set_rng_state(tensors["rng.cuda"], device)
    result.history = list(meta["history"])
    result.best_epoch, result.best_valid = meta["best_epoch"], meta["best_valid"]
    best = _with_prefix(tensors, "best.") or weights
    result.best_state = {name: tensor.to(device, copy=True) for name, tensor in best.items()}
    result.resumed_at = [*meta["resumed_at"], checkpoint.epoch]


def _with_prefix(tensors: StateDict, prefix: str) -> StateDict:
    return {name[len(prefix) :]: tensor for name, tensor in tensors.items() if name.startswith(prefix)}


def training_windows(
    sequences: Sequences, max_len: int, horizon: int, all_windows: bool
) -> tuple[Sequences, np.ndarray, np.ndarray]:
    """What one epoch trains on: ``(windows, trainable rows of windows, their lengths (<= max_len + 1))``.

    ``horizon > 1`` (prior heads on the horizon prior learn the next ``horizon`` items of every position)
    extends each window by the events that follow it, as targets only.
    """
    if all_windows:
        sequences = sequences.windows(max_len + 1, lookahead=horizon - 1)
    own = sequences.lengths - (sequences.ahead if sequences.ahead is not None else 0)  # without lookahead
    trainable = np.flatnonzero(own >= 2)  # a sequence needs one input and one target
    return sequences, trainable, np.minimum(own[trainable], max_len + 1)


def train_step(
    model: SequentialModel,
    optimizer: torch.optim.Optimizer,
    sequences: Sequences,
    rows: np.ndarray,
    max_len: int,
    horizon: int,
    loss_config: LossConfig,
    precision: Precision = "float32",
    group: Group = Group(),
) -> float:
    """One optimisation step on the windows ``rows`` of ``sequences``; returns the loss. In a ``group`` of
    processes ``rows`` are this process's share of the batch, and the step and the loss are the batch's."""
    device = model.item_embedding.weight.device
    optimizer.zero_grad(set_to_none=True)
    loss, targets = 0.0, 0
    if len(rows):  # a batch smaller than the group leaves some processes no rows
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bfloat16"):
            share_loss, targets = _loss(model, sequences, rows, max_len, horizon, loss_config)
        share_loss.backward()
        loss = share_loss.item()
    if group.size > 1:
        trained = [parameter for settings in optimizer.param_groups for parameter in settings["params"]]
        loss = group.share_gradients(trained, targets, loss)
    optimizer.step()
    return loss


def _loss(
    model: SequentialModel,
    sequences: Sequences,
    rows: np.ndarray,
    max_len: int,
    horizon: int,
    loss_config: LossConfig,
) -> tuple[torch.Tensor, int]:
    """The loss of the windows ``rows`` and the number of targets it averages."""
    batch = training_batch(sequences, rows, max_len, horizon)
    items, timestamps, request_times = batch.inputs.tensors()
    hidden = model(items, timestamps, request_times=request_times)  # (B, L, D)
    targets = torch.from_numpy(batch.targets).to(hidden.device)  # (B, L, K)
    supervised = targets[..., 0] != PAD  # a position with no next item has none further ahead either
    loss = hidden.new_zeros(())
    next_item_weight = 1.0
    if model.heads is not None:  # the heads bring their own objective (one cross-entropy per prior value)
        target_rows = None
        if sequences.rows is not None:
            rows_ahead = np.where(batch.sources >= 0, sequences.rows[batch.sources], -1)
            target_rows = torch.from_numpy(rows_ahead).to(hidden.device)[supervised]
        head_inputs, item_table = hidden[supervised], model.item_embedding.weight
        if not model.heads.config.end_to_end:  # adapters only: the next-item loss alone shapes what they read
            head_inputs, item_table = head_inputs.detach(), item_table.detach()
        loss = prior_heads_loss(model.heads, head_inputs, targets[supervised], item_table, target_rows)
        next_item_weight = model.heads.config.next_item_weight
    if next_item_weight:
        next_items = targets[..., 0][supervised]
        loss = loss + next_item_weight * next_item_loss(
            loss_config, hidden[supervised], next_items, model.output_embeddings()
        )
    return loss, int(supervised.sum())


def _evaluate(model: SequentialModel, validate: Callable[[], dict[str, float]]) -> dict[str, float]:
    model.eval()
    with torch.no_grad():
        return validate()


def _copy_state(model: SequentialModel) -> StateDict:
    return {name: tensor.detach().clone() for name, tensor in model.state_dict().items()}
