"""Runs cut short (Ctrl-C, a kill, a cut measurement) and ``Recommender.resume``: what is kept, and that a
resumed run is the one an uninterrupted fit would have made, on the synthetic cycle of cyclic_log.py."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import save_file

from cyclic_log import tiny_config
from intentrec.config import RunConfig
from intentrec.errors import ConfigError, IntentRecError
from intentrec.recommender import Recommender
from intentrec.run import RunFiles


def test_ctrl_c_during_training_still_finishes_the_run(cyclic, tmp_path, monkeypatch) -> None:
    evaluate = Recommender.evaluate
    calls = []

    def interrupted_evaluate(self, on="test", **options):
        calls.append(on)
        if on == "valid" and calls.count("valid") == 2:
            raise KeyboardInterrupt  # Ctrl-C in epoch 2
        return evaluate(self, on, **options)

    monkeypatch.setattr(Recommender, "evaluate", interrupted_evaluate)
    recommender = Recommender(tiny_config(epochs=4)).fit(cyclic, out=tmp_path)
    monkeypatch.undo()
    assert recommender.metrics["stopped"] == "interrupted"
    assert recommender.metrics["best_epoch"] == 1 and recommender.metrics["epochs"] == 1
    loaded = Recommender.load(tmp_path)
    assert loaded.evaluate("test") == recommender.metrics["test"]
    assert (tmp_path / "last.safetensors").is_file()


def test_a_run_killed_after_an_epoch_loads_from_its_checkpoint(cyclic, tmp_path, monkeypatch) -> None:
    import intentrec.recommender as module

    save_epoch = module.save_epoch

    def checkpoint_then_die(files: RunFiles, *epoch_end) -> None:
        save_epoch(files, *epoch_end)
        raise RuntimeError("killed")  # the process dies right after the first checkpoint

    monkeypatch.setattr(module, "save_epoch", checkpoint_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        Recommender(tiny_config(epochs=4)).fit(cyclic, out=tmp_path)
    assert not (tmp_path / "metrics.json").exists()
    loaded = Recommender.load(tmp_path)
    assert loaded.metrics == {}
    names = [f"{metric}@{k}" for metric in ("hr", "recall", "ndcg", "mrr") for k in (1, 10)]
    assert list(loaded.evaluate("test"))[: len(names)] == names  # then beyond-accuracy metrics
    assert loaded.recommend(["u3"], k=2).height == 2


def test_a_killed_run_resumes_to_what_it_would_have_been(cyclic, tmp_path, monkeypatch) -> None:
    import intentrec.recommender as module

    save_epoch = module.save_epoch

    def die_after_epoch_2(files: RunFiles, config, result, *epoch_end) -> None:
        save_epoch(files, config, result, *epoch_end)
        if len(result.history) == 2:
            raise RuntimeError("killed")

    straight = Recommender(tiny_config(epochs=5)).fit(cyclic, out=tmp_path / "straight")
    monkeypatch.setattr(module, "save_epoch", die_after_epoch_2)
    with pytest.raises(RuntimeError, match="killed"):
        Recommender(tiny_config(epochs=3)).fit(cyclic, out=tmp_path / "killed")
    monkeypatch.undo()

    config_file = tmp_path / "killed" / "config.json"  # edited by hand since: refused, naming what changed
    saved = config_file.read_text()
    edited = json.loads(saved)
    edited["model"]["dropout"], edited["train"]["lr"] = 0.3, 0.5
    config_file.write_text(json.dumps(edited))
    with pytest.raises(
        ConfigError, match=r"config\.json: differs .* in model\.dropout, train\.lr; put it back"
    ):
        Recommender.resume(tmp_path / "killed", ["train.epochs=5"])
    config_file.write_text(saved)

    resumed = Recommender.resume(tmp_path / "killed", ["train.epochs=5", "train.max_minutes=30"])
    assert resumed.metrics["resumed_at"] == [2] and resumed.metrics["epochs"] == 5
    assert resumed.metrics["test"] == straight.metrics["test"]
    assert resumed.metrics["best_epoch"] == straight.metrics["best_epoch"]
    for name, tensor in straight.model.state_dict().items():
        assert torch.equal(tensor, resumed.model.state_dict()[name]), name
    saved = RunConfig.from_file(tmp_path / "killed" / "config.json").train
    assert (saved.epochs, saved.max_minutes) == (5, 30)  # the config says how the run was trained
    assert json.loads((tmp_path / "killed" / "metrics.json").read_text())["resumed_at"] == [2]
    assert Recommender.load(tmp_path / "killed").evaluate("test") == straight.metrics["test"]


def test_a_resume_cut_short_leaves_no_metrics_of_other_weights(cyclic, tmp_path, monkeypatch) -> None:
    import intentrec.recommender as module

    run = tmp_path / "run"
    Recommender(tiny_config(epochs=1)).fit(cyclic, out=run)
    assert (run / "metrics.json").is_file()
    save_epoch = module.save_epoch

    def checkpoint_then_die(*epoch_end) -> None:
        save_epoch(*epoch_end)
        raise RuntimeError("killed")

    monkeypatch.setattr(module, "save_epoch", checkpoint_then_die)
    with pytest.raises(RuntimeError, match="killed"):
        Recommender.resume(run, ["train.epochs=3"])
    assert not (run / "metrics.json").exists()  # epoch 1's, for epoch 2's weights


def test_a_run_stopped_while_measured_is_measured_by_resume(cyclic, tmp_path, monkeypatch) -> None:
    straight = Recommender(tiny_config(epochs=2)).fit(cyclic, out=tmp_path / "straight")
    measure = Recommender._measure

    def ctrl_c(*args) -> None:
        raise KeyboardInterrupt  # after the last epoch, in the test pass

    monkeypatch.setattr(Recommender, "_measure", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        Recommender(tiny_config(epochs=2)).fit(cyclic, out=tmp_path / "cut")
    monkeypatch.setattr(Recommender, "_measure", measure)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    measured = Recommender.resume(tmp_path / "cut")  # trains nothing: measures
    stored = json.loads((tmp_path / "cut" / "metrics.json").read_text())
    assert stored["test"] == measured.metrics["test"] == straight.metrics["test"]
    assert (stored["best_epoch"], stored["epochs"], stored["stopped"]) == (
        straight.metrics["best_epoch"],
        2,
        straight.metrics["stopped"],
    )
    with pytest.raises(ConfigError, match="raise train"):  # measured now: nothing left to resume
        Recommender.resume(tmp_path / "cut")


def test_resume_refuses_what_it_cannot_continue_and_says_why(fitted, cyclic, tmp_path) -> None:
    _, run = fitted  # trained to its end: 8 epochs or early stopping
    stopped = json.loads((run / "metrics.json").read_text())["stopped"]
    limit = "train.epochs" if stopped == "max_epochs" else "train.patience"
    with pytest.raises(ConfigError, match=f"{run}: .*raise {limit}"):
        Recommender.resume(run)
    with pytest.raises(ConfigError, match=r"model\.dim is part of what was trained"):
        Recommender.resume(run, ["model.dim=32"])
    with pytest.raises(ConfigError, match=r"train\.lr is part of what was trained"):
        Recommender.resume(run, ["train.lr=0.1"])
    with pytest.raises(
        ConfigError, match=r"train\.epoch is not a setting \(did you mean 'train\.epochs'\?\)"
    ):
        Recommender.resume(run, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"model\.dimm is not a setting"):
        Recommender.resume(run, ["model.dimm=3"])
    Recommender(tiny_config(epochs=1, resumable=False)).fit(cyclic, out=tmp_path / "plain")
    with pytest.raises(IntentRecError, match=r"no resume\.safetensors"):
        Recommender.resume(tmp_path / "plain", ["train.epochs=2"])
    (tmp_path / "plain" / "resume.safetensors").write_bytes(b"cut short")  # a file that is not one
    with pytest.raises(IntentRecError, match=r"resume\.safetensors: unreadable checkpoint"):
        Recommender.resume(tmp_path / "plain", ["train.epochs=2"])
    save_file({"x": torch.zeros(1)}, tmp_path / "plain" / "resume.safetensors", {"training": '{"epoch": '})
    with pytest.raises(
        IntentRecError, match=r"resume\.safetensors: damaged checkpoint \(its 'training' meta"
    ):
        Recommender.resume(tmp_path / "plain", ["train.epochs=2"])
    diverged = tmp_path / "diverged"  # its checkpoint is the epoch before the one that diverged
    shutil.copytree(run, diverged)
    metrics = json.loads((diverged / "metrics.json").read_text())
    (diverged / "metrics.json").write_text(json.dumps({**metrics, "stopped": "diverged"}))
    with pytest.raises(ConfigError, match=r"diverged, and resuming it would repeat the same steps"):
        Recommender.resume(diverged, ["train.epochs=20", "train.patience=20"])
