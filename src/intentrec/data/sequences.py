"""Per-user sequences in compressed (CSR) form, and the left-padded arrays models consume.

A :class:`Sequences` holds many variable-length sequences in flat arrays: user ``u = users[r]`` owns
``items[offsets[r]:offsets[r + 1]]``, oldest first. Batches are cut from it without Python loops over rows:
:func:`pad_left` gathers the last ``max_len`` events of each requested row into a ``(B, L)`` array whose
real events are right-aligned, so the most recent event of every row sits at column ``L - 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import polars as pl
import torch

#: Item index used for padding in model inputs; dataset item ``i`` is model item ``i + 1``.
PAD = 0


@dataclass(frozen=True)
class Sequences:
    """Ragged sequences: ``users (N,)``, ``offsets (N + 1,)``, ``items (E,)``, ``timestamps (E,)``.

    ``items`` are dataset item indices (``0 .. n_items - 1``); ``timestamps`` are Unix seconds or positions.
    ``rows (E,)``, when known, is each event's row in the Dataset's interactions table (its event type,
    rating, ...). ``ahead (N,)``, set on training windows only, counts the events at the end of each row that
    are there as targets of the events before them, never as inputs (see :meth:`windows`).
    ``request_times (N,)``, set on histories to rank, is when each row's next item is asked for (the time of
    an evaluation user's first target, or of a request), in the unit of ``timestamps``.
    """

    users: np.ndarray
    offsets: np.ndarray
    items: np.ndarray
    timestamps: np.ndarray
    rows: np.ndarray | None = None
    ahead: np.ndarray | None = None
    request_times: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def event_rows(self) -> np.ndarray:
        """``(E,)`` the row each event belongs to."""
        return np.repeat(np.arange(len(self)), self.lengths)

    def rows_with(self, item_flags: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` bool, on ``item_flags``' device: whether some event of each row is an item with flag
        ``c`` of ``item_flags (n_items, C)`` (e.g. the categories a user has met), event by event rather
        than padded to the longest row."""
        device = item_flags.device
        counts = torch.zeros(len(self), item_flags.shape[1], dtype=torch.int32, device=device)
        event_flags = item_flags[torch.from_numpy(self.items.astype(np.int64)).to(device)].to(torch.int32)
        return counts.index_add_(0, torch.from_numpy(self.event_rows).to(device), event_flags) > 0

    @classmethod
    def from_frame(cls, frame: pl.DataFrame) -> Sequences:
        """Build from rows ``user_idx, item_idx, timestamp`` (and optionally ``row``, see the class)
        already sorted by user then time."""
        counts = frame.group_by("user_idx", maintain_order=True).len()
        offsets = np.zeros(counts.height + 1, dtype=np.int64)
        np.cumsum(counts["len"].to_numpy(), out=offsets[1:])
        return cls(
            users=counts["user_idx"].to_numpy().astype(np.int32),
            offsets=offsets,
            items=frame["item_idx"].to_numpy().astype(np.int32),
            timestamps=frame["timestamp"].to_numpy().astype(np.int64),
            rows=frame["row"].to_numpy().astype(np.int64) if "row" in frame.columns else None,
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
        ahead = self.ahead[rows] if self.ahead is not None else None
        gathered = self._gather(self.users[rows], offsets, flat, ahead)
        if self.request_times is None:
            return gathered
        return replace(gathered, request_times=self.request_times[rows])

    def at(self, request_time: int) -> Sequences:
        """These sequences, every row's next item asked for at ``request_time``."""
        return replace(self, request_times=np.full(len(self), request_time, dtype=np.int64))

    def windows(self, size: int, lookahead: int = 0) -> Sequences:
        """Cut every row into windows of at most ``size`` events, overlapping by one event.

        The last window of a row ends at its last event, and each earlier one ends where the next begins,
        so in next-item training every event but a row's first is a target exactly once, however long
        the row is (``size = max_len + 1``). Windows keep the row's user; short rows stay whole.

        ``lookahead > 0`` (training on the next several items) extends each window by up to that many of
        the events that follow it in its row, counted in ``ahead``: they are targets of the window's last
        inputs, which would otherwise lose the targets that lie beyond the window.
        """
        step = size - 1
        lengths = self.lengths
        counts = np.maximum(1, -(-(lengths - 1) // step))  # ceil((n - 1) / step), at least one window
        row = np.repeat(np.arange(len(self)), counts)
        # k = 0 for the most recent window of a row, 1 for the one before, ...
        k = np.arange(len(row)) - np.repeat(np.cumsum(counts) - counts, counts)
        ends = self.offsets[row + 1] - k * step
        starts = np.maximum(ends - size, self.offsets[row])
        ahead = np.minimum(k * step, lookahead)  # the most recent window (k = 0) has nothing after it
        offsets = np.zeros(len(row) + 1, dtype=np.int64)
        np.cumsum(ends + ahead - starts, out=offsets[1:])
        flat = _ragged_positions(starts, ends + ahead - starts)
        return self._gather(self.users[row], offsets, flat, ahead if lookahead else None)

    def _gather(
        self, users: np.ndarray, offsets: np.ndarray, flat: np.ndarray, ahead: np.ndarray | None
    ) -> Sequences:
        """New sequences of the events at ``flat`` indices, cut by ``offsets``."""
        rows = self.rows[flat] if self.rows is not None else None
        return Sequences(users, offsets, self.items[flat], self.timestamps[flat], rows, ahead)


@dataclass(frozen=True)
class PaddedBatch:
    """Model input for ``B`` rows: ``items (B, L)`` as model indices (dataset index + 1, ``PAD`` = 0),
    ``timestamps (B, L)`` (0 where padded); real events right-aligned, most recent at column ``L - 1``.
    ``request_times (B,)``, when known, is when the item after column ``L - 1`` is asked for (the time of
    the event it predicts, in training)."""

    items: np.ndarray
    timestamps: np.ndarray
    request_times: np.ndarray | None = None

    @property
    def mask(self) -> np.ndarray:
        """``(B, L)`` bool, True at real events."""
        return self.items != PAD

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """``(items, timestamps, request_times)`` as CPU tensors, as a model takes them."""
        request_times = torch.from_numpy(self.request_times) if self.request_times is not None else None
        return torch.from_numpy(self.items), torch.from_numpy(self.timestamps), request_times


def pad_left(sequences: Sequences, rows: np.ndarray, max_len: int, drop_last: int = 0) -> PaddedBatch:
    """Left-pad the last ``max_len`` events of each row, ignoring the final ``drop_last`` events; with
    ``drop_last = 0`` the rows' ``request_times`` come along.

    The width ``L`` is the longest kept length among ``rows`` (at most ``max_len``), so a batch of short
    sequences costs little. ``drop_last = 1`` gives the inputs of next-item training; the targets are the
    same call shifted by one (``pad_left(..., drop_last=0)`` minus the first event), see ``training_batch``.
    """
    ends = sequences.offsets[rows + 1] - drop_last
    source, valid = _window(sequences, rows, ends, max_len, min_width=1)
    asked = sequences.request_times
    return _gathered(sequences, source, valid, asked[rows] if asked is not None and not drop_last else None)


def _window(
    sequences: Sequences, rows: np.ndarray, ends: np.ndarray, max_len: int, min_width: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """``source (B, L)``, ``valid (B, L)``: the flat index of the event in cell ``(b, j)`` of the left-padded
    window of the last ``max_len`` events of row ``rows[b]`` before ``ends[b]``, and whether the cell holds
    one (0 where not). ``L`` is the longest window, at least ``min_width``."""
    lengths = np.clip(ends - sequences.offsets[rows], 0, max_len)
    width = max(int(lengths.max(initial=0)), min_width)
    columns = np.arange(width)
    source = ends[:, None] - width + columns[None, :]
    valid = columns[None, :] >= (width - lengths)[:, None]
    return np.where(valid, source, 0), valid


def _gathered(
    sequences: Sequences, source: np.ndarray, valid: np.ndarray, request_times: np.ndarray | None
) -> PaddedBatch:
    return PaddedBatch(
        items=np.where(valid, sequences.items[source].astype(np.int64) + 1, PAD),
        timestamps=np.where(valid, sequences.timestamps[source], 0),
        request_times=request_times,
    )


@dataclass(frozen=True)
class TrainingBatch:
    """Inputs and what each input position is trained to predict.

    ``targets (B, L, K)``: model indices of the 1st .. K-th events after input ``(b, t)`` (``PAD`` where
    the row has no such event); ``sources (B, L, K)``: where those targets sit in the sequences' flat
    arrays (``-1`` where ``PAD``), to look up their event type or any other per-event attribute.
    """

    inputs: PaddedBatch
    targets: np.ndarray
    sources: np.ndarray


def training_batch(sequences: Sequences, rows: np.ndarray, max_len: int, horizon: int = 1) -> TrainingBatch:
    """The inputs of ``rows`` and their targets ``1 .. horizon`` events ahead (``horizon = 1``: next item).

    Inputs are the last ``max_len`` events of each row that have an event after them and are not
    lookahead-only (``sequences.ahead``); they are left-padded as in :func:`pad_left`, and each row's
    ``request_times`` is the time of its last input's target.
    """
    ahead = sequences.ahead[rows] if sequences.ahead is not None else 0
    row_ends = sequences.offsets[rows + 1]
    ends = row_ends - ahead - 1  # the last event of a row is only ever a target
    source, valid = _window(sequences, rows, ends, max_len)
    # each row's request time: its last input's target's, the time that target is asked for
    inputs = _gathered(sequences, source, valid, request_times=sequences.timestamps[ends])
    future = source[:, :, None] + np.arange(1, horizon + 1)  # (B, L, K)
    has_target = valid[:, :, None] & (future < row_ends[:, None, None])
    future = np.where(has_target, future, -1)
    targets = np.where(has_target, sequences.items[np.maximum(future, 0)].astype(np.int64) + 1, PAD)
    return TrainingBatch(inputs=inputs, targets=targets, sources=future)


def _ragged_positions(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Flat indices ``starts[r] + 0 .. lengths[r] - 1`` for every row, concatenated, without a loop."""
    total = int(lengths.sum())
    row_starts = np.repeat(starts - np.concatenate(([0], np.cumsum(lengths)[:-1])), lengths)
    return row_starts + np.arange(total)
