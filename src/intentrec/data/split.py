"""Leak-free train / validation / test splits of a Dataset.

Three protocols:

``leave_one_out``
    Per user with at least 3 events: test target = last event, validation target = second to last,
    training = everything before the validation target. The test input is the history up to the test
    target (it contains the validation target, which is never trained on). Users with fewer events are
    trained on in full and not evaluated.
``leave_last_k``
    The same with ``k`` targets: the last ``k`` events are test targets, the ``k`` before them validation
    targets; users need at least ``2k + 1`` events to be evaluated.
``temporal``
    One global time cut for validation and one for test (Ji et al., TOIS 2023: leave-one-out lets the
    model see other users' future). Training = every event before the validation cut. Validation targets
    are events in ``[valid_cut, test_cut)`` with the history before ``valid_cut`` as input; test targets are
    events at or after ``test_cut`` with the history before ``test_cut`` as input. Users with no history
    before a cut are not evaluated for it (a sequential model has nothing to condition on).

In every protocol a target is never part of its own input history, and no validation or test target is
ever in the training sequences (tests check both).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

import polars as pl
from pydantic import Field, model_validator

from intentrec.data.dataset import Dataset
from intentrec.data.sequences import Sequences
from intentrec.errors import ConfigError, DataError
from intentrec.settings import Settings


class SplitConfig(Settings):
    """How a Dataset is cut into training, validation and test."""

    kind: Literal["leave_one_out", "leave_last_k", "temporal"] = "leave_one_out"
    k: int = Field(1, ge=1, description="Targets per user for 'leave_last_k'.")
    valid_cut: float = Field(
        0.9,
        description="'temporal': validation cut, a quantile of all timestamps in (0, 1) or a unix time in "
        "seconds (also for a log in milliseconds, which is read in seconds).",
    )
    test_cut: float = Field(
        0.95, description="'temporal': test cut, a quantile of all timestamps in (0, 1) or a unix time (s)."
    )
    temporal_targets: Literal["all", "first"] = Field(
        "all", description="'temporal': every event after the cut is a target, or only the user's first."
    )

    @model_validator(mode="after")
    def _cuts_in_order(self) -> SplitConfig:
        # a quantile and a time are compared once the quantile is a time (split_dataset)
        both_quantiles_or_times = _is_quantile(self.valid_cut) == _is_quantile(self.test_cut)
        if self.kind == "temporal" and both_quantiles_or_times and self.valid_cut > self.test_cut:
            raise ValueError(f"valid_cut ({self.valid_cut}) must not be after test_cut ({self.test_cut})")
        return self


@dataclass(frozen=True)
class EvalSet:
    """Evaluation users: their input ``history`` and their ``targets``, row ``r`` of each for one user."""

    history: Sequences
    targets: Sequences

    def __len__(self) -> int:
        return len(self.history)


@dataclass(frozen=True)
class Split:
    """Training sequences plus validation and test sets, all in dataset indices."""

    train: Sequences
    valid: EvalSet
    test: EvalSet
    config: SplitConfig


def split_dataset(dataset: Dataset, config: SplitConfig | None = None) -> Split:
    """Cut ``dataset`` into train / valid / test as ``config`` says (see the module docstring)."""
    config = config or SplitConfig()
    events = dataset.interactions.select("user_idx", "item_idx", "timestamp").with_columns(
        row=pl.int_range(pl.len()),  # what the event type, rating, ... of each event is read back by
        position=pl.int_range(pl.len()).over("user_idx"),
        length=pl.len().over("user_idx"),
    )
    if config.kind == "temporal":
        split = _temporal(events, dataset, config)
    else:
        k = 1 if config.kind == "leave_one_out" else config.k
        split = _leave_last(events, k, config)
    for name, eval_set in (("validation", split.valid), ("test", split.test)):
        if len(eval_set) == 0:
            raise DataError(
                f"{dataset.card.source}: the {config.kind} split leaves no users to evaluate on "
                f"({name} set is empty); users need more interactions or the cut must move"
                f"{_time_span(events, config)}."
            )
    return split


def _time_span(events: pl.DataFrame, config: SplitConfig) -> str:
    """For a temporal split's messages: where its cuts fell among the log's times."""
    if config.kind != "temporal":
        return ""
    cuts = [_resolve_cut(events, cut) for cut in (config.valid_cut, config.test_cut)]
    first, last = events["timestamp"].min(), events["timestamp"].max()
    return f" (the cuts are at {cuts[0]} and {cuts[1]}; the log's times run from {first} to {last}, seconds)"


def _leave_last(events: pl.DataFrame, k: int, config: SplitConfig) -> Split:
    evaluated = pl.col("length") >= 2 * k + 1
    test_start = pl.col("length") - k
    valid_start = pl.col("length") - 2 * k
    train = events.filter(~evaluated | (pl.col("position") < valid_start))
    valid = _eval_set(
        events.filter(evaluated & (pl.col("position") < valid_start)),
        events.filter(evaluated & (pl.col("position") >= valid_start) & (pl.col("position") < test_start)),
    )
    test = _eval_set(
        events.filter(evaluated & (pl.col("position") < test_start)),
        events.filter(evaluated & (pl.col("position") >= test_start)),
    )
    return Split(train=Sequences.from_frame(train), valid=valid, test=test, config=config)


def _temporal(events: pl.DataFrame, dataset: Dataset, config: SplitConfig) -> Split:
    if dataset.card.timestamp_kind == "order":
        raise ConfigError(
            f"split.kind 'temporal' needs real timestamps, but {dataset.card.source} only gives the order of "
            "events; use 'leave_one_out' or 'leave_last_k'."
        )
    valid_cut = _resolve_cut(events, config.valid_cut)
    test_cut = _resolve_cut(events, config.test_cut)
    if valid_cut > test_cut:
        raise ConfigError(
            f"split.valid_cut ({config.valid_cut:g}: {valid_cut}) is after split.test_cut "
            f"({config.test_cut:g}: {test_cut}); validation must come before the test."
        )
    time = pl.col("timestamp")
    return Split(
        train=Sequences.from_frame(events.filter(time < valid_cut)),
        valid=_temporal_eval_set(events, valid_cut, test_cut, config),
        test=_temporal_eval_set(events, test_cut, None, config),
        config=config,
    )


def _temporal_eval_set(events: pl.DataFrame, start: int, end: int | None, config: SplitConfig) -> EvalSet:
    time = pl.col("timestamp")
    history = events.filter(time < start)
    in_window = (time >= start) if end is None else ((time >= start) & (time < end))
    targets = events.filter(in_window & pl.col("user_idx").is_in(history["user_idx"].unique().implode()))
    if config.temporal_targets == "first":
        targets = targets.filter(pl.int_range(pl.len()).over("user_idx") == 0)
    history = history.filter(pl.col("user_idx").is_in(targets["user_idx"].unique().implode()))
    return _eval_set(history, targets)


def _resolve_cut(events: pl.DataFrame, cut: float) -> int:
    """A cut in (0, 1) is a quantile of all timestamps; anything else is a timestamp itself."""
    if _is_quantile(cut):
        return int(events["timestamp"].quantile(cut, interpolation="higher"))
    return int(cut)


def _is_quantile(cut: float) -> bool:
    return 0 < cut < 1


def _eval_set(history: pl.DataFrame, targets: pl.DataFrame) -> EvalSet:
    """Pair histories and targets row by row; both frames are sorted by user and hold the same users.

    Each history is asked for its next items at the time of the user's first target: what a request
    would carry, never the target itself.
    """
    target_sequences = Sequences.from_frame(targets)
    asked_at = target_sequences.timestamps[target_sequences.offsets[:-1]]
    history_sequences = replace(Sequences.from_frame(history), request_times=asked_at)
    return EvalSet(history=history_sequences, targets=target_sequences)
