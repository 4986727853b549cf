"""The installed ``intentrec`` command, run as a user would: exit codes, one-line errors, fit -> evaluate.

Each call starts a Python process (a few seconds of imports), so the tiny run is fitted once per module.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import polars as pl
import pytest
import typer

from intentrec.cli.options import report_run
from intentrec.models.hstu import HSTUConfig


@pytest.fixture(scope="module")
def run(intentrec, csv, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    done = intentrec(
        "fit", "--data", csv, "--set", "train.epochs=2", "--set", "model.dim=8", "--set", "train.threads=1",
        "--out", out,
    )  # fmt: skip
    return out, json.loads(done.stdout)


def test_help_lists_the_subcommands(intentrec) -> None:
    done = intentrec("--help")
    for command in ("fit", "evaluate", "data"):
        assert command in done.stdout


def test_a_missing_data_path_is_a_one_line_error(intentrec, tmp_path) -> None:
    missing = tmp_path / "[bold]logs" / "[/]nope.csv"  # printed as it is, not read as rich markup
    done = intentrec("fit", "--data", missing, "--out", tmp_path / "run", expect=2)
    message = done.stderr.strip()
    assert "\n" not in message
    assert message.startswith("error:") and f"{missing}: no such file or folder" in message
    assert not (tmp_path / "run").exists()


def test_a_config_mistake_names_the_field(intentrec, csv, tmp_path) -> None:
    done = intentrec("fit", "--data", csv, "--set", "train.lrr=0.1", "--out", tmp_path / "run", expect=2)
    assert "train.lrr: unknown field (did you mean 'lr'?)" in done.stderr


def test_a_setting_given_by_its_option_and_by_set_is_refused(intentrec, csv, tmp_path) -> None:
    done = intentrec(
        "fit", "--data", csv, "--set", "data.path=elsewhere.csv", "--out", tmp_path / "run", expect=2
    )
    assert "--set 'data.path=elsewhere.csv': data.path is already given by its own option" in done.stderr
    # a whole section would drop the option's setting in it as silently
    section = 'model={"dim": 8}'
    done = intentrec(
        "fit", "--data", csv, "--model", "hstu", "--set", section, "--out", tmp_path / "run", expect=2
    )  # fmt: skip
    assert f"--set {section!r}: model.name is already given by its own option" in done.stderr
    # and so would a part of one: --columns gives data.columns whole
    part = "data.columns.user=v"
    done = intentrec("fit", "--columns", "user=u,item=i", "--set", part, "--out", tmp_path / "run", expect=2)
    assert f"--set {part!r}: data.columns is already given by its own option" in done.stderr
    assert not (tmp_path / "run").exists()


def test_a_config_file_gives_only_what_it_says(intentrec, csv, tmp_path) -> None:
    """Settings it does not write are the defaults of the model --model names, not SASRec's, and it is
    checked with the options in (attention_dim is HSTU's, not SASRec's)."""
    (tmp_path / "short.toml").write_text(
        "[train]\nepochs = 1\nthreads = 1\n\n[model]\nn_blocks = 1\nattention_dim = 4\n"
    )
    out = tmp_path / "run"
    intentrec("fit", "--data", csv, "--config", tmp_path / "short.toml", "--model", "hstu", "--out", out)
    saved = json.loads((out / "config.json").read_text())
    assert saved["model"] == HSTUConfig(n_blocks=1, attention_dim=4).model_dump(mode="json")
    assert saved["train"]["epochs"] == 1


def test_training_that_diverges_says_so_and_exits_non_zero(csv, tmp_path) -> None:
    command = [str(Path(sys.executable).parent / "intentrec"), "fit", "--data", str(csv)]
    command += ["--out", str(tmp_path / "run"), "--set", "train.lr=1e30", "--set", "train.epochs=3"]
    command += ["--set", "model.dim=8", "--set", "train.threads=1"]
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
    # 2 when it diverges in the first epoch (nothing to keep), 1 when a run of the epochs before is written
    assert done.returncode in (1, 2), done.stderr
    assert "training diverged in epoch" in done.stderr and "lower train.lr (now 1e+30)" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("stopped", "status"), [("early_stopping", 0), ("interrupted", 130), ("diverged", 1)]
)
def test_a_run_not_done_ends_with_a_status_a_script_can_read(stopped, status, capsys) -> None:
    trained = SimpleNamespace(metrics={"test": {"ndcg@10": 0.1}, "stopped": stopped})
    if status:
        with pytest.raises(typer.Exit) as ended:
            report_run("runs/x", trained)
        assert ended.value.exit_code == status
    else:
        report_run("runs/x", trained)
    assert json.loads(capsys.readouterr().out) == {"run": "runs/x", "test": {"ndcg@10": 0.1}}


def test_fit_needs_an_out_folder_and_overwrites_a_run_only_when_asked(intentrec, csv, run, tmp_path):
    done = intentrec("fit", "--data", csv, "--out", "", expect=2)
    assert (
        done.stderr.strip()
        == "error: --out is empty: give the folder to write the run to, e.g. --out runs/first."
    )
    done = intentrec("fit", "--data", csv, "--out", run[0], expect=2)
    assert done.stderr.strip().startswith(f"error: --out {run[0]}: the folder already holds a run")
    copy = tmp_path / "copy"
    shutil.copytree(run[0], copy)  # the module's run stays as the other tests expect it
    tiny = ["--set", "train.epochs=1", "--set", "model.dim=8", "--set", "train.threads=1"]
    intentrec("fit", "--data", csv, *tiny, "--out", copy, "--overwrite")
    assert json.loads((copy / "metrics.json").read_text())["epochs"] == 1


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_keeps_the_run_and_exits_130_so_that_a_script_stops(csv, tmp_path, signum) -> None:
    """SIGTERM (timeout, docker stop, a job scheduler) stops a run as Ctrl-C does."""
    out = tmp_path / "cut"
    command = [str(Path(sys.executable).parent / "intentrec"), "fit", "--data", str(csv), "--out", str(out)]
    command += ["--set", "train.epochs=100000", "--set", "train.patience=100000", "--set", "model.dim=8"]
    environment = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}  # log lines unwrapped
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=environment)
    assert process.stderr is not None
    for line in process.stderr:  # the first epoch has been checkpointed once its line is logged
        if "epoch 1 " in line:
            break
    process.send_signal(signum)
    rest = process.stderr.read()
    assert process.wait(timeout=60) == 130, rest
    assert "Traceback" not in rest
    assert json.loads((out / "metrics.json").read_text())["stopped"] == "interrupted"


def test_serving_settings_and_column_roles_name_what_is_unknown(intentrec, run, monkeypatch) -> None:
    done = intentrec("serve", run[0], "--set", "cache_user=0", expect=2)
    assert "cache_user: unknown field (did you mean 'cache_users'?) (got 0)" in done.stderr
    with monkeypatch.context() as patched:  # INTENTREC_TOKEN=$SECRET with $SECRET unset: not an open server
        patched.setenv("INTENTREC_TOKEN", "")
        done = intentrec("serve", run[0], expect=2)
    assert "INTENTREC_TOKEN is set but empty" in done.stderr
    done = intentrec("serve", run[0], "--index", "exact", "--set", 'index={"kind": "hnsw"}', expect=2)
    assert "index.kind is already given by its own option" in done.stderr
    done = intentrec("fit", "--columns", "user=u,iten=i", "--out", "unused", expect=2)
    assert "iten: unknown field (did you mean 'item'?)" in done.stderr
    done = intentrec("fit", "--columns", "user=a,item=i,user=b", "--out", "unused", expect=2)
    assert "'user' is given twice" in done.stderr  # not the last one silently
    done = intentrec("fit", "--priors", ",", "--out", "unused", expect=2)
    assert "--priors ',': name one or two priors" in done.stderr


def test_fit_then_evaluate_gives_the_same_test_metrics(intentrec, run) -> None:
    out, printed = run
    stored = json.loads((out / "metrics.json").read_text())
    assert printed == {"run": str(out), "test": stored["test"]}
    assert stored["epochs"] == 2
    config = json.loads((out / "config.json").read_text())
    assert config["model"]["dim"] == 8 and config["train"]["epochs"] == 2
    evaluated = json.loads(intentrec("evaluate", out, "--json").stdout)
    assert evaluated["test"] == stored["test"]  # exactly, not approximately
    assert evaluated["valid"] == stored["valid"]
    approximate = json.loads(intentrec("evaluate", out, "--json", "--precision", "bfloat16").stdout)
    assert approximate["test"].keys() == stored["test"].keys()
    done = intentrec("evaluate", out, "--precision", "half", expect=2)
    assert "Invalid value for '--precision'" in done.stderr and "'half' is not one of" in done.stderr


def test_resume_a_finished_run_for_more_epochs(intentrec, run, tmp_path) -> None:
    out = tmp_path / "copy"
    shutil.copytree(run[0], out)  # the module's run stays as the other tests expect it
    done = intentrec("resume", out, expect=2)
    assert done.stderr.strip() == (
        f"error: {out}: the run has trained 2 epochs, train.epochs = 2; raise train.epochs to continue it."
    )
    printed = json.loads(intentrec("resume", out, "--set", "train.epochs=3").stdout)
    stored = json.loads((out / "metrics.json").read_text())
    assert printed == {"run": str(out), "test": stored["test"]}
    assert stored["epochs"] == 3 and stored["resumed_at"] == [2]
    assert len((out / "history.jsonl").read_text().splitlines()) == 3


def test_a_device_this_machine_lacks_is_a_one_line_error(intentrec, csv, run, tmp_path) -> None:
    done = intentrec("fit", "--data", csv, "--device", "cuda:63", "--out", tmp_path / "run", expect=2)
    assert done.stderr.strip() == "error: train.device 'cuda:63': this machine has no such device; use 'cpu'."
    assert not (tmp_path / "run").exists()
    done = intentrec("evaluate", run[0], "--device", "gpu0", expect=2)
    assert "device 'gpu0': not a torch device" in done.stderr and "Traceback" not in done.stderr


def test_recommend_checks_its_output_before_loading_the_run(intentrec, tmp_path) -> None:
    """A wrong file name costs nothing: it is refused before the model loads (here: before the run that is
    not there is even looked at)."""
    out = tmp_path / "recs.txt"
    done = intentrec("recommend", tmp_path / "no-run", "--out", out, expect=2)
    assert done.stderr.strip() == f"error: --out {out}: expected a .parquet or .csv file name."
    done = intentrec("recommend", tmp_path / "no-run", "--k", "0", "--out", tmp_path / "recs.csv", expect=2)
    assert "Invalid value for '--k'" in done.stderr


def test_data_info(intentrec, csv) -> None:
    summary = json.loads(intentrec("data", "info", csv, "--json").stdout)
    assert summary["users"] == 40 and summary["items"] == 20
    assert summary["format"] == "table"
    table = intentrec("data", "info", csv).stdout
    assert "users" in table and "40" in table
    done = intentrec("data", "info", "", expect=2)  # an unset $DATA in a script
    assert "data info: PATH is empty; give a log file, a folder or a dataset name." in done.stderr
    assert "Traceback" not in done.stderr


def test_prior_heads_from_fit_to_steered_recommendations(intentrec, csv, tmp_path) -> None:
    out = tmp_path / "horizon"
    intentrec(
        "fit", "--data", csv, "--priors", "horizon", "--set", "train.epochs=1", "--set", "model.dim=8",
        "--set", "train.threads=1", "--out", out,
    )  # fmt: skip
    assert json.loads((out / "config.json").read_text())["heads"]["priors"] == ["horizon"]
    recs = tmp_path / "recs.parquet"
    intentrec(
        "recommend", out, "--k", "3", "--only", "next 1-4", "--value-weight", "next 1-4=2", "--out", recs
    )
    table = pl.read_parquet(recs)
    assert table.height == 40 * 3 and set(table["head"]) == {"next 1-4"}
    negative = intentrec(
        "recommend", out, "--unexplored", "-1", "--value-weight", "x=-2", "--out", recs, expect=2
    )
    assert "steering: invalid configuration" in negative.stderr and "unexplored" in negative.stderr
    assert "values: weights must be from 0 to 1e+09" in negative.stderr and "Traceback" not in negative.stderr
    intentrec("recommend", out, "--k", "3", "--unexplored", "3", "--out", tmp_path / "explore.csv")
    assert pl.read_csv(tmp_path / "explore.csv").height == 40 * 3  # no category heads: nothing to explore
    unknown = intentrec("recommend", out, "--only", "next 9", "--out", recs, expect=2)
    assert "no head or prior value 'next 9'" in unknown.stderr
    malformed = intentrec("recommend", out, "--value-weight", "next 1-4", "--out", recs, expect=2)
    assert "expected NAME=WEIGHT" in malformed.stderr
    bogus = intentrec("fit", "--data", csv, "--priors", "genres", "--out", tmp_path / "bad", expect=2)
    assert "heads.priors.0: Input should be 'taxonomy'" in bogus.stderr and "(got 'genres')" in bogus.stderr
