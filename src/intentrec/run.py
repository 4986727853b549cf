"""The artefacts of a run, in one folder, every file written atomically.

config.json          the resolved RunConfig (reloads to the same model)
dataset/             the encoded Dataset (Parquet + card.json), with the raw-ID vocabularies
model.safetensors    the best weights (selected on validation)
last.safetensors     the weights at the end of training, or when it was interrupted
resume.safetensors   the last whole epoch, complete enough to continue training (`intentrec resume`)
metrics.json         validation and test metrics, best epoch, why training stopped, timings
history.jsonl        one JSON line per epoch (loss, throughput, validation metrics)
train.log            the log of the run
index.faiss          the HNSW index `intentrec serve` builds for a large catalogue, and index.json, what it
                     was built from (a cache: deleted or out of date, it is built again)
"""

from __future__ import annotations

import json
import logging
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from intentrec.config import RunConfig, apply_overrides
from intentrec.errors import ConfigError, IntentRecError, did_you_mean
from intentrec.storage import read_text, write_json, write_text, write_with
from intentrec.training.trainer import RESUMABLE_SETTINGS, Checkpoint, StateDict, TrainResult

log = logging.getLogger("intentrec")


class RunFiles:
    """Paths of the artefacts of the run in ``root``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.config = self.root / "config.json"
        self.dataset = self.root / "dataset"
        self.best_weights = self.root / "model.safetensors"
        self.last_weights = self.root / "last.safetensors"
        self.checkpoint = self.root / "resume.safetensors"
        self.metrics = self.root / "metrics.json"
        self.history = self.root / "history.jsonl"
        self.log = self.root / "train.log"
        self.index = self.root / "index.faiss"
        # where --overwrite sets the run it replaces aside until the new one holds weights (started)
        self._aside = self.root.parent / f".{self.root.name}.replaced"

    @property
    def artefacts(self) -> list[Path]:
        """Every file and folder a run may hold (the index card included)."""
        paths = [self.config, self.dataset, self.best_weights, self.last_weights, self.checkpoint]
        return [*paths, self.metrics, self.history, self.log, self.index, self.index.with_suffix(".json")]

    def check_not_ours(self, path: str | Path, option: str = "--out") -> None:
        """A ConfigError when writing to ``path`` would replace one of this run's files."""
        target = Path(path).resolve()
        if target in (artefact.resolve() for artefact in self.artefacts) or target.is_relative_to(
            self.dataset.resolve()
        ):
            raise ConfigError(f"{option} {path}: that is a file of the run {self.root}; write elsewhere.")

    def check_new(self, overwrite: bool = False) -> RunFiles:
        """Raise a clear error, before any work, if a new run may not be written here.

        A new or empty folder may be; a folder that holds a run only with ``overwrite``; a folder that holds
        anything else, or a path that is a file, never.
        """
        if self.root.exists() and not self.root.is_dir():
            raise ConfigError(f"--out {self.root}: that is a file; give a folder for the run.")
        above = next((parent for parent in self.root.parents if parent.exists()), None)
        if above is not None and not above.is_dir():
            raise ConfigError(f"--out {self.root}: {above} is a file, so no folder can be made below it.")
        if self._aside.exists():
            raise ConfigError(
                f"--out {self.root}: {self._aside} holds the run an interrupted --overwrite set aside; move "
                "it back or delete it first."
            )
        if self.root.is_dir() and any(self.root.iterdir()):
            # a run: its config and its saved dataset, so that no other folder's files are ever deleted
            if not (self.config.is_file() and (self.dataset / "card.json").is_file()):
                raise ConfigError(
                    f"--out {self.root}: the folder holds other files and no IntentRec run; "
                    "give a new or empty folder."
                )
            if not overwrite:
                raise ConfigError(
                    f"--out {self.root}: the folder already holds a run; give another folder, or "
                    "--overwrite to replace it."
                )
        return self

    @contextmanager
    def started(self, overwrite: bool = False) -> Iterator[RunFiles]:
        """:meth:`check_new`, then make the folder for the run written inside the block.

        A run the folder holds is set aside (in a hidden folder beside it, ``.NAME.replaced``) rather than
        deleted, so that no old log, history or index mixes with the new run's: it is deleted once the
        block ends with the new run holding weights, and put back when it ends without any (an error, a
        Ctrl-C or a divergence before the first epoch is kept), so a failed ``--overwrite`` loses nothing.
        A new run that ends without weights leaves nothing behind either: the folder is as it was.
        """
        self.check_new(overwrite)
        aside = self._aside
        old = [path for path in self.artefacts if path.exists()]
        made = not self.root.exists()
        try:
            if old:
                aside.mkdir()
                for path in old:
                    path.rename(aside / path.name)
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigError(
                f"--out {self.root}: cannot make the folder ({error.strerror or error})."
            ) from None
        try:
            yield self
        finally:
            if not self.best_weights.is_file():  # the new run kept nothing: the folder is as it was
                for path in self.artefacts:
                    if path.is_dir():
                        shutil.rmtree(path)
                    else:
                        path.unlink(missing_ok=True)
                for path in old:
                    (aside / path.name).rename(path)
                if made and not any(self.root.iterdir()):
                    self.root.rmdir()
                back = "; the run it held is back" if old else ""
                log.warning("%s: ended without weights (no epoch finished), nothing kept%s", self.root, back)
            if old:
                shutil.rmtree(aside)

    def require(self) -> RunFiles:
        """Check this is a run folder with weights; raise a clear error if not."""
        if not self.config.is_file():
            raise IntentRecError(
                f"{self.root}: not an IntentRec run (no config.json); give a folder from `fit --out`."
            )
        if not self.best_weights.is_file():
            raise IntentRecError(
                f"{self.root}: the run has no model.safetensors yet (training never finished an epoch)."
            )
        return self


def save_weights(path: Path, state: dict[str, torch.Tensor]) -> None:
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state.items()}
    write_with(path, lambda tmp: save_file(tensors, str(tmp)))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise IntentRecError(
            f"{path}: unreadable weights ({error}); the file is damaged or not a run's."
        ) from None


def save_checkpoint(path: Path, checkpoint: Checkpoint) -> None:
    """One file, written atomically: the tensors, and the JSON part in the safetensors header."""
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in checkpoint.tensors.items()}
    metadata = {"training": json.dumps(checkpoint.meta)}
    write_with(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        with safe_open(str(path), framework="pt") as file:
            meta = (file.metadata() or {}).get("training")
        tensors = load_file(str(path))
    except (OSError, SafetensorError) as error:
        raise IntentRecError(f"{path}: unreadable checkpoint ({error}).") from None
    if meta is None:
        raise IntentRecError(f"{path}: not a training checkpoint of IntentRec (no 'training' metadata).")
    try:
        return Checkpoint(tensors, json.loads(meta))
    except json.JSONDecodeError as error:
        raise IntentRecError(f"{path}: damaged checkpoint (its 'training' metadata: {error}).") from None


def resumable_checkpoint(files: RunFiles) -> Checkpoint:
    """The checkpoint ``files``' run resumes from; an error saying why when it cannot resume."""
    if not files.checkpoint.is_file():
        raise IntentRecError(
            f"{files.root}: no resume.safetensors to continue from (the run was trained with "
            "train.resumable = false, or by a version of IntentRec that did not write it)."
        )
    # a diverged run's checkpoint is the epoch before the one that diverged: resuming takes the same steps
    if stored_metrics(files).get("stopped") == "diverged":
        raise ConfigError(
            f"{files.root}: its training diverged, and resuming it would repeat the same steps; "
            "start a new run with `fit` and a lower train.lr."
        )
    return load_checkpoint(files.checkpoint)


def save_epoch(
    files: RunFiles, config: RunConfig, result: TrainResult, state: StateDict, checkpoint: Checkpoint | None
) -> None:
    """What an epoch leaves in the run folder: the last (and best) weights, the history, the checkpoint."""
    save_weights(files.last_weights, state)
    if result.best_state and result.best_epoch == len(result.history):
        save_weights(files.best_weights, result.best_state)
    write_history(files.history, result.history)
    if checkpoint is not None:  # last: it must never be ahead of the best weights and history beside it
        # what was trained, so that resume notices a config.json edited since
        checkpoint.meta["trained_config"] = trained_part(config)
        save_checkpoint(files.checkpoint, checkpoint)


def resumed_config(files: RunFiles, checkpoint: Checkpoint, changes: Sequence[str]) -> RunConfig:
    """The run's config with the ``train.key=value`` ``changes`` a resume may make (a ConfigError naming
    any other key), checked against what the checkpoint was trained with."""
    saved = RunConfig.from_file(files.config).to_json()
    allowed = [f"train.{name}" for name in RESUMABLE_SETTINGS]
    for change in changes:
        key = change.partition("=")[0].strip()
        if key not in allowed:
            names = {name for name, _ in flat_settings(saved)}
            known = key in names or any(name.startswith(f"{key}.") for name in names)
            why = (
                f"{key} is part of what was trained (start a new run with `fit` to change it)"
                if known
                else f"{key} is not a setting{did_you_mean(key, allowed)}"
            )
            raise ConfigError(f"--set {change!r}: a resumed run can change only {', '.join(allowed)}; {why}.")
    config = RunConfig.from_dict(apply_overrides(saved, list(changes)), "--set")
    check_unedited(files, checkpoint, config)
    return config


def check_unedited(files: RunFiles, checkpoint: Checkpoint, config: RunConfig) -> None:
    """A ConfigError naming the settings in which ``config`` (the run's config.json, with the changes a
    resume may make) differs from what the checkpoint was trained with."""
    trained = checkpoint.meta.get("trained_config")  # absent from checkpoints of older versions
    edited = flat_settings(trained) ^ flat_settings(trained_part(config)) if trained is not None else set()
    if edited:
        keys = ", ".join(sorted({key for key, _ in edited}))
        raise ConfigError(
            f"{files.config}: differs from the config the run was trained with in {keys}; "
            "put it back, or start a new run with `fit` to change it."
        )


def flat_settings(values: dict[str, Any], prefix: str = "") -> set[tuple[str, str]]:
    """``{("model.dim", "64"), ...}``: every leaf setting of a config's JSON with its value as JSON."""
    leaves = set()
    for key, value in values.items():
        if isinstance(value, dict):
            leaves |= flat_settings(value, f"{prefix}{key}.")
        else:
            leaves.add((f"{prefix}{key}", json.dumps(value)))
    return leaves


def trained_part(config: RunConfig) -> dict[str, Any]:
    """The config as JSON without the settings a resumed run may change."""
    values = config.to_json()
    values["train"] = {k: v for k, v in values["train"].items() if k not in RESUMABLE_SETTINGS}
    return values


def write_history(path: Path, history: list[dict[str, Any]]) -> None:
    write_text(path, "".join(json.dumps(record) + "\n" for record in history))


def write_metrics(path: Path, metrics: dict[str, Any]) -> None:
    write_json(path, metrics)


def stored_metrics(files: RunFiles) -> dict[str, Any]:
    """The run's metrics.json: empty when it has none (yet), or, with a warning, when it is damaged (the
    model loads without it)."""
    if not files.metrics.is_file():
        return {}
    try:
        metrics = json.loads(read_text(files.metrics))
    except (IntentRecError, json.JSONDecodeError) as error:
        metrics = error
    if not isinstance(metrics, dict):
        log.warning("%s: damaged, not read (%s)", files.metrics, metrics)
        return {}
    return metrics


@contextmanager
def log_to(path: Path | None) -> Iterator[None]:
    """Copy the ``intentrec`` log into ``path`` (a run's ``train.log``) for the duration of the block."""
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
