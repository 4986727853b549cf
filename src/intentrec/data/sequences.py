"""Per-user sequences in compressed (CSR) form, and the left-padded arrays models consume.

A :class:`Sequences` holds many variable-length sequences in flat arrays: user ``u = users[r]`` owns
``items[offsets[r]:offsets[r + 1]]``, oldest first. Batches are cut from it without Python loops over rows:
:func:`pad_left` gathers the last ``max_len`` events of each requested row into a ``(B, L)`` array whose
real events are right-aligned, so the most recent event of every row sits at column ``L - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

#: Item index used for padding in model inputs; dataset item ``i`` is model item ``i + 1``.
PAD = 0


@dataclass(frozen=True)
class Sequences:
    """Ragged sequences: ``users (N,)``, ``offsets (N + 1,)``, ``items (E,)``, ``timestamps (E,)``.

    ``items`` are dataset item indices (``0 .. n_items - 1``); ``timestamps`` are Unix seconds or positions.
    """

    users: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Sequences:
        """Build from rows ``user_idx, item_idx, timestamp`` already sorted by user then time."""
        counts = frame.group_by("user_idx", maintain_order=True).len()
        offsets = np.zeros(counts.height + 1, dtype=np.int64)
        np.cumsum(counts["len"].to_numpy(), out=offsets[1:])
        return cls(
            users=counts["user_idx"].to_numpy().astype(np.int32),
            offsets=offsets,
            items=frame["item_idx"].to_numpy().astype(np.int32),
            timestamps=frame["timestamp"].to_numpy().astype(np.int64),
        )

    def row(self, r: int) -> np.ndarray:
        """Items of row ``r`` (a view), oldest first."""
        return self.items[self.offsets[r] : self.offsets[r + 1]]

    def subset(self, rows: np.ndarray) -> Sequences:
        """The sequences of the given rows, in the given order."""
        lengths = self.lengths[rows]
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = _ragged_positions(self.offsets[rows], lengths)
        return Sequences(self.users[rows], offsets, self.items[flat], self.timestamps[flat])

    def windows(self, size: int) -> Sequences:
        """Cut every row into windows of at most ``size`` events, overlapping by one event.

        The last window of a row ends at its last event, and each earlier one ends where the next begins,
        so in next-item training every event but a row's first is a target exactly once, however long
        the row is (``size = max_len + 1``). Windows keep the row's user; short rows stay whole.
        """
        step = size - 1
        lengths = self.lengths
        counts = np.maximum(1, -(-(lengths - 1) // step))  # ceil((n - 1) / step), at least one window
        row = np.repeat(np.arange(len(self)), counts)
        # k = 0 for the most recent window of a row, 1 for the one before, ...
        k = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
        ends = self.offsets[row + 1] - k * step
        starts = np.maximum(ends - size, self.offsets[row])
        offsets = np.zeros(len(row) + 1, dtype=np.int64)
        np.cumsum(ends - starts, out=offsets[1:])
        flat = _ragged_positions(starts, ends - starts)
        return Sequences(self.users[row], offsets, self.items[flat], self.timestamps[flat])


@dataclass(frozen=True)
class PaddedBatch:
    """Model input for ``B`` rows: ``items (B, L)`` as model indices (dataset index + 1, ``PAD`` = 0),
    ``timestamps (B, L)`` (0 where padded); real events right-aligned, most recent at column ``L - 1``."""

    items: np.ndarray
    timestamps: np.ndarray

    @property
    def mask(self) -> np.ndarray:
        """``(B, L)`` bool, True at real events."""
        return self.items != PAD


def pad_left(sequences: Sequences, rows: np.ndarray, max_len: int, drop_last: int = 0) -> PaddedBatch:
    """Left-pad the last ``max_len`` events of each row, ignoring the final ``drop_last`` events.

    The width ``L`` is the longest kept length among ``rows`` (at most ``max_len``), so a batch of short
    sequences costs little. ``drop_last = 1`` gives the inputs of next-item training; the targets are the
    same call shifted by one (``pad_left(..., drop_last=0)`` minus the first event), see ``next_item_batch``.
    """
    ends = sequences.offsets[rows + 1] - drop_last
    lengths = np.clip(ends - sequences.offsets[rows], 0, max_len)
    width = max(int(lengths.max(initial=0)), 1)
    columns = np.arange(width)
    # cell (b, j) holds event ends[b] - width + j when that lies inside the kept window
    source = ends[:, None] - width + columns[None, :]
    valid = columns[None, :] >= (width - lengths)[:, None]
    source = np.where(valid, source, 0)
    items = np.where(valid, sequences.items[source].astype(np.int64) + 1, PAD)
    timestamps = np.where(valid, sequences.timestamps[source], 0)
    return PaddedBatch(items=items, timestamps=timestamps)


def next_item_batch(sequences: Sequences, rows: np.ndarray, max_len: int) -> tuple[PaddedBatch, np.ndarray]:
    """Inputs and next-item targets for training: input ``t`` predicts target ``t`` (the event after it).

    Returns the padded inputs ``(B, L)`` and targets ``(B, L)`` as model indices, ``PAD`` where no target.
    """
    window = pad_left(sequences, rows, max_len + 1)
    inputs = PaddedBatch(window.items[:, :-1], window.timestamps[:, :-1])
    targets = np.where(inputs.items != PAD, window.items[:, 1:], PAD)
    return inputs, targets


def _ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices ``starts[r] + 0 .. lengths[r] - 1`` for every row, concatenated, without a loop."""
    total = int(lengths.sum())
    row_starts = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return row_starts + np.arange(total)
