"""Training in two processes: the gradients shared as one process would take them, and ``torchrun -m
intentrec fit`` giving the run that one process gives (real processes talking over gloo on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.distributed.elastic.multiprocessing.errors import ChildFailedError, ProcessFailure

from intentrec.errors import ConfigError, IntentRecError
from intentrec.recommender import Recommender
from intentrec.training.processes import Group, hand_to_torchrun, join

TINY = ["--set", "model.dim=16", "--set", "train.batch_size=16", "--set", "train.min_epochs=1"]


def _share(rank: int, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        torch.manual_seed(0)
        weight, only_second, unused = (torch.nn.Parameter(torch.randn(3)) for _ in range(3))
        inputs = torch.randn(3, 3)  # rows 0, 1 go to process 0, row 2 to process 1
        mine = inputs[:2] if rank == 0 else inputs[2:]
        loss = (mine @ weight).square().mean()
        if rank == 1:
            loss = loss + only_second.sum()
        loss.backward()
        mean = Group(rank, 2).share_gradients([weight, only_second, unused], len(mine), loss.item())
        expected = 2 * inputs.T @ (inputs @ weight) / 3  # the gradient of the mean over all three rows
        torch.testing.assert_close(weight.grad, expected.detach())
        torch.testing.assert_close(only_second.grad, torch.full((3,), 1 / 3))  # one target of three
        assert unused.grad is None  # no process used it: AdamW skips it, as in one process
        whole = ((inputs @ weight).square().sum() + only_second.sum()) / 3
        assert mean == pytest.approx(whole.item(), rel=1e-5)
    finally:
        dist.destroy_process_group()


def test_shared_gradients_are_the_whole_batch_s(tmp_path: Path) -> None:
    mp.spawn(_share, args=(str(tmp_path / "store"),), nprocs=2)


def _alone(rank: int, store: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        group, done = Group(rank, 2), []
        group.alone(lambda: done.append(rank))
        assert done == ([0] if rank == 0 else [])  # process 0 alone works; the others wait for it

        def cannot_write() -> None:
            raise ConfigError("runs/x/metrics.json: cannot write there (No space left on device).")

        # a mistake met by process 0 alone reaches every process, which can then end together
        with pytest.raises(IntentRecError, match=r"^runs/x/metrics\.json: cannot write there"):
            group.alone(cannot_write)
        group.alone(None)  # nothing to do: still a meeting point

        def disk_full() -> None:
            raise OSError(28, "No space left on device")

        # a crash too: process 0 raises its own, the others a RuntimeError naming it, none waits in gloo
        with pytest.raises(OSError if rank == 0 else RuntimeError, match="No space left on device"):
            group.alone(disk_full)
    finally:
        dist.destroy_process_group()


def test_work_of_process_0_alone_and_its_mistakes_reach_every_process(tmp_path: Path) -> None:
    mp.spawn(_alone, args=(str(tmp_path / "store"),), nprocs=2)


def test_several_processes_run_on_the_cpu_and_under_torchrun(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")  # set by some platforms without torchrun
    with pytest.raises(IntentRecError, match="RANK, MASTER_ADDR or MASTER_PORT is not set"):
        join("cpu")
    for name, value in (("RANK", "0"), ("MASTER_ADDR", "127.0.0.1"), ("MASTER_PORT", "29500")):
        monkeypatch.setenv(name, value)
    with pytest.raises(IntentRecError, match="runs on the CPU"):
        join("cuda")
    monkeypatch.delenv("WORLD_SIZE")
    assert join("cpu") == Group()  # alone: a group of one, nothing to join


def test_a_mistake_is_handed_to_torchruns_failure_summary(tmp_path: Path, monkeypatch) -> None:
    # a mistake met by a process other than 0 alone is printed by no process: torchrun's summary says it
    error_file = tmp_path / "error.json"
    monkeypatch.setenv("TORCHELASTIC_ERROR_FILE", str(error_file))
    hand_to_torchrun("error: --data x.csv: no such file")
    failure = ProcessFailure(local_rank=1, pid=1, exitcode=2, error_file=str(error_file))
    assert failure.message["message"] == "error: --data x.csv: no such file"
    assert "error: --data x.csv: no such file" in ChildFailedError("intentrec", {1: failure}).format_msg()


def _run(*args: str | Path, processes: int, fails: bool = False) -> subprocess.CompletedProcess[str]:
    """``intentrec ARGS`` alone, or under ``torchrun`` in ``processes`` processes (which, when one fails,
    prints a traceback of its own)."""
    bin_dir = Path(sys.executable).parent
    launch = [str(bin_dir / "intentrec")]
    if processes > 1:
        launch = [
            str(bin_dir / "torchrun"),
            "--standalone",
            f"--nproc-per-node={processes}",
            "-m",
            "intentrec",
        ]
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([*launch, *map(str, args)], capture_output=True, text=True, env=env, timeout=180)
    if fails:
        assert done.returncode != 0
        return done
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    assert "Traceback" not in done.stderr
    return done


def _history(run: Path) -> list[dict[str, float]]:
    return [json.loads(line) for line in (run / "history.jsonl").read_text().splitlines()]


def test_two_processes_train_as_one_does(csv: Path, tmp_path: Path) -> None:
    settings = [*TINY, "--set", "model.dropout=0", "--set", "train.epochs=3"]
    _run("fit", "--data", csv, "--out", tmp_path / "one", *settings, processes=1)
    two = _run("fit", "--data", csv, "--out", tmp_path / "two", *settings, processes=2)
    assert json.loads(two.stdout)["run"] == str(tmp_path / "two")  # process 0 alone reports
    assert two.stderr.count("epoch 1 ") == 1  # and logs
    one_epochs, two_epochs = _history(tmp_path / "one"), _history(tmp_path / "two")
    assert len(two_epochs) == 3
    for alone, shared in zip(one_epochs, two_epochs, strict=True):
        assert shared["loss"] == pytest.approx(alone["loss"], rel=1e-5)
        assert shared["valid_ndcg@10"] == pytest.approx(alone["valid_ndcg@10"], abs=1e-6)
    one_metrics, two_metrics = (
        json.loads((tmp_path / r / "metrics.json").read_text()) for r in ("one", "two")
    )
    assert two_metrics["test"] == pytest.approx(one_metrics["test"], abs=1e-6)
    assert (tmp_path / "two" / "train.log").read_text().count("epoch 1 ") == 1
    again = _run("fit", "--data", csv, "--out", tmp_path / "two", *settings, processes=2, fails=True)
    ours, torchruns_summary = again.stderr.split("intentrec FAILED")
    assert ours.count("error: --out") == 1  # every process meets the mistake; one says it
    assert torchruns_summary.count("traceback : error: --out") == 2  # and torchrun names it for each
    (tmp_path / ".three.replaced").mkdir()  # left by an --overwrite that was killed: every process sees it
    aside = _run("fit", "--data", csv, "--out", tmp_path / "three", *settings, processes=2, fails=True)
    assert aside.stderr.split("intentrec FAILED")[0].count("error: --out") == 1
    for crash in ("gloo", "intentrec/run.py", "recommender.py", "trainer.py"):  # no process crashed
        assert crash not in aside.stderr, crash


def test_two_processes_resume_as_if_never_stopped(csv: Path, tmp_path: Path) -> None:
    # dropout on: each process's masks come from (seed, epoch, rank), so a resumed epoch repeats them
    settings = [*TINY, "--set", "model.dropout=0.3"]
    _run("fit", "--data", csv, "--out", tmp_path / "whole", *settings, "--set", "train.epochs=3", processes=2)
    _run("fit", "--data", csv, "--out", tmp_path / "cut", *settings, "--set", "train.epochs=2", processes=2)
    _run("resume", tmp_path / "cut", "--set", "train.epochs=3", processes=2)
    whole, cut = _history(tmp_path / "whole"), _history(tmp_path / "cut")
    assert [epoch["loss"] for epoch in cut] == pytest.approx([epoch["loss"] for epoch in whole], rel=1e-6)
    assert [e["valid_ndcg@10"] for e in cut] == pytest.approx([e["valid_ndcg@10"] for e in whole], abs=1e-7)
    alone = _run("resume", tmp_path / "cut", "--set", "train.epochs=4", processes=1)
    assert "resumed in 1 process(es), trained in 2" in alone.stderr


def test_ctrl_c_stops_every_process_after_the_same_step(csv: Path, tmp_path: Path) -> None:
    """torchrun passes Ctrl-C on as SIGINT; the processes stop together and the run is written as one
    process writes an interrupted run (best weights, measured, resumable from its last whole epoch)."""
    run = tmp_path / "cut"
    # the time limit only ends the workers should the test fail before its signal
    endless = ["train.epochs=10000", "train.patience=10000", "train.max_minutes=3"]
    settings = [*TINY, *(arg for setting in endless for arg in ("--set", setting))]
    launch = [str(Path(sys.executable).parent / "torchrun"), "--standalone", "--nproc-per-node=2"]
    env = {**os.environ, "NO_COLOR": "1", "OMP_NUM_THREADS": "1"}
    command = [*launch, "-m", "intentrec", "fit", "--data", str(csv), "--out", str(run), *settings]
    torchrun = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 120
        while not ((run / "history.jsonl").is_file() and len(_history(run)) >= 2):
            assert torchrun.poll() is None and time.monotonic() < deadline, torchrun.communicate()
            time.sleep(0.2)
        torchrun.send_signal(signal.SIGINT)  # what Ctrl-C in its terminal does
        _, stderr = torchrun.communicate(timeout=120)
    finally:
        if torchrun.poll() is None:  # torchrun passes a signal on to the workers, a kill it cannot
            torchrun.terminate()
            torchrun.wait(60)
    assert "Unable to shutdown process" not in stderr  # every worker ended by itself, none was killed
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stopped"] == "interrupted" and "ndcg@10" in metrics["test"]
    epochs = len(_history(run))
    assert Recommender.load(run).recommend(k=3).height > 0
    _run("resume", run, "--set", "train.epochs=" + str(epochs + 1), processes=2)
    assert len(_history(run)) == epochs + 1  # from the last whole epoch
