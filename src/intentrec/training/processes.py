"""Data-parallel training in several processes, started by ``torchrun``.

    torchrun --nproc-per-node 2 -m intentrec fit --data DATA --out RUN

Every process holds the whole model and the whole training set, and draws the same batches in the same
order (they share the seed). Each batch is dealt out row by row; after the backward pass every process's
gradients become

    g = sum_p n_p g_p / sum_p n_p        n_p = the targets process p's share supervised

one all-reduce, so the step is the one a single process takes on the whole batch (up to the order of
floating-point sums) and ``batch_size`` and ``lr`` mean what they mean in one process. That is exact for
the next-item loss; prior heads weigh their losses by the targets of each process's share, so with heads
the step is close to one process's, not the same. Each process draws its own dropout masks and negatives
from (seed, epoch, rank), so a run resumed in as many processes repeats them. Process 0 validates
(with the threads of every process: the others wait idle), decides when to stop and writes the run; the
others follow its decisions. The processes talk over gloo, on the CPU: torchrun gives each one thread
(``OMP_NUM_THREADS=1``) unless ``train.threads`` says otherwise.

Ctrl-C reaches torchrun, which passes it on to every process as SIGINT (SIGTERM when torchrun itself is
terminated) and waits for them, 30 seconds unless ``torchrun --shutdown-timeout`` says otherwise, before
it kills them. The signal reaches each process at a different point, so none stops by itself (it would
leave the others waiting in a collective): a process notes it, the note travels in the next step's
all-reduce, and every process stops after that same step, as one process stops on Ctrl-C. A signal that
comes after the last step (during the last validation or the final measurement) lets the run finish.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import NoReturn, TypeVar

import torch
import torch.distributed as dist

from intentrec.errors import ConfigError, IntentRecError

T = TypeVar("T")

#: Set by SIGINT or SIGTERM in a process of a group; read at the next training step (module docstring).
_stop_asked = False


def _ask_to_stop(signum: int, frame: object) -> None:
    global _stop_asked
    _stop_asked = True


@dataclass(frozen=True)
class Group:
    """This process's place among the training processes: ``rank`` of ``size``."""

    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        """Process 0: the one that validates, decides and writes."""
        return self.rank == 0

    def from_main(self, value: T) -> T:
        """Process 0's ``value``, in every process (a broadcast of any picklable Python value)."""
        if self.size == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    @contextmanager
    def all_threads(self) -> Iterator[None]:
        """In process 0, the threads of every process for what it does alone (validation, measurement):
        meanwhile the others wait in a collective, which keeps no core busy."""
        threads = torch.get_num_threads()
        if self.size > 1 and self.main:
            torch.set_num_threads(threads * self.size)
        try:
            yield
        finally:
            torch.set_num_threads(threads)

    def alone(self, work: Callable[[], None] | None) -> None:
        """Process 0 runs ``work`` (measuring, writing) while the others wait for it. What stops it there
        (a mistake such as a file it cannot write, or a crash such as a full disk) is raised in every
        process, so that all of them end on it together rather than wait in a collective for a process
        that has left: a mistake as that mistake, a crash as a RuntimeError that names it."""
        if self.size == 1:
            if work is not None:
                work()
            return
        failure: Exception | None = None
        if self.main and work is not None:
            try:
                work()
            except Exception as error:  # passed on to every process, then raised again here
                failure = error
        said = self.from_main(
            None if failure is None else (isinstance(failure, IntentRecError), str(failure) or repr(failure))
        )
        if failure is not None:
            raise failure
        if said is not None:
            mistake, message = said
            raise IntentRecError(message) if mistake else RuntimeError(f"process 0 stopped: {message}")

    def share_gradients(self, parameters: list[torch.nn.Parameter], targets: int, loss: float) -> float:
        """Replace each process's gradients of ``parameters`` by the whole batch's, weighing each process
        by the ``targets`` its rows supervised; returns the batch's mean ``loss`` over all targets.

        A parameter left without a gradient in every process stays without one (AdamW then skips it, as it
        does in one process); one used in some process gets the batch's gradient everywhere. When any
        process was asked to stop (SIGINT, SIGTERM), every process raises KeyboardInterrupt here, at the
        same step, before the optimiser takes it.
        """
        global _stop_asked
        sizes = [p.numel() for p in parameters]
        gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
        used = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32)
        sums = torch.tensor([loss * targets, targets, float(_stop_asked)])
        flat = torch.cat([torch.cat([g.reshape(-1) for g in gradients]) * targets, used, sums])
        dist.all_reduce(flat)
        if flat[-1] > 0:
            _stop_asked = False  # acted on; a later fit in this process starts afresh
            raise KeyboardInterrupt
        total = flat[-2].clamp(min=1)  # the whole batch's targets
        shared, users = flat[: sum(sizes)].split(sizes), flat[sum(sizes) : -3].tolist()
        for parameter, gradient, used_by in zip(parameters, shared, users, strict=True):
            parameter.grad = (gradient / total).view_as(parameter) if used_by else None
        return float(flat[-3] / total)


def join(device: str) -> Group:
    """The group of training processes torchrun started this one in (joined on the first call), or a
    group of one when it runs alone. Processes other than 0 log errors only."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return Group()
    if not all(name in os.environ for name in ("RANK", "MASTER_ADDR", "MASTER_PORT")):
        raise ConfigError(
            f"WORLD_SIZE is {size} but RANK, MASTER_ADDR or MASTER_PORT is not set: several processes are "
            "started by torchrun (torchrun --standalone --nproc-per-node N -m intentrec fit ...); to train "
            "in one process, unset WORLD_SIZE."
        )
    if torch.device(device).type != "cpu":
        raise ConfigError(
            f"train.device {device!r}: training in several processes (torchrun) runs on the CPU in this "
            "version; use train.device='cpu', or one process on the accelerator."
        )
    if not dist.is_initialized():
        for stop in (signal.SIGINT, signal.SIGTERM):  # noted, acted on together (module docstring)
            signal.signal(stop, _ask_to_stop)
        # the others wait for process 0's measurement at the end, which can be long on a large catalogue;
        # a process that fails is not waited for: its peers' next collective fails, or torchrun kills them
        dist.init_process_group("gloo", timeout=timedelta(hours=24))
    group = Group(dist.get_rank(), dist.get_world_size())
    if not group.main:  # process 0 says it all, once
        logging.getLogger("intentrec").setLevel(logging.ERROR)
    return group


def hand_to_torchrun(message: str) -> None:
    """Leave ``message`` (a user mistake this process met) where torchrun reads a failed process's error:
    its failure summary then shows it for this process ("traceback : ...") instead of a link to its docs.
    Process 0 alone prints mistakes itself, so one met by another process alone is said there. Outside
    torchrun (no ``TORCHELASTIC_ERROR_FILE``), nothing."""
    path = os.environ.get("TORCHELASTIC_ERROR_FILE")
    if path:
        with suppress(OSError):  # then torchrun shows its usual link; the exit status (2) still tells
            # the form torch's own error handler writes, less the Python stack (a mistake has none to show)
            record = {"message": message, "extraInfo": {"timestamp": str(int(time.time()))}}
            Path(path).write_text(json.dumps({"message": record}))


def joined() -> bool:
    """Whether this process belongs to a group of several (it ran :func:`join` under torchrun)."""
    return dist.is_available() and dist.is_initialized()


def exit_group(status: int) -> NoReturn:
    """End this process of a torchrun group once every process has got here, all with the highest
    status any of them ends with.

    The group is not torn down: gloo's threads, torn down while a peer's are, now and then aborted a
    process that had done all its work ("terminate called without an active exception", SIGABRT, so
    torchrun reported a failure); output is flushed and the process ends at once."""
    statuses = torch.tensor([status])
    dist.all_reduce(statuses, op=dist.ReduceOp.MAX)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(int(statuses))
