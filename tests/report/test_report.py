"""``intentrec report``: the page of two tiny real runs, read as HTML and as a person sees it in Chromium.

Two tiny models (SASRec, GRU4Rec) are fitted once for the module, a few seconds each. The second run's
folder name holds HTML (``<i>&co``): the page must show it as text, never read it as markup.
"""

from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from intentrec.config import RunConfig
from intentrec.errors import ConfigError
from intentrec.recommender import Recommender
from intentrec.report import ReportError, plots, read_runs, write_report
from intentrec.report.page import METRICS
from intentrec.report.runs import RunSummary

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
N_ITEMS = 20
PLOTS = 4  # NDCG against entropy and against coverage; validation NDCG and loss per epoch
HEADS = {"next": 0.75, "Drama <b>": 0.25}
CATEGORIES = {"<script>alert(1)</script>": {"recall@10": 0.5, "ndcg@10": 0.25, "users": 7}}


def cyclic_rows(n_users: int = 60) -> list[tuple[str, str, int]]:
    """Users walk the cycle i0 -> i1 -> ... -> i19 -> i0 from a random start: a learnable log."""
    rng = np.random.default_rng(0)
    rows = []
    for user in range(n_users):
        start, length = rng.integers(N_ITEMS), rng.integers(5, 12)
        rows += [(f"u{user}", f"i{(start + t) % N_ITEMS}", 1_600_000_000 + 60 * t) for t in range(length)]
    return rows


def tiny_config(model: dict) -> RunConfig:
    return RunConfig.from_dict(
        {
            "model": {"dim": 8, "dropout": 0.0, "max_len": 10, **model},
            "train": {"epochs": 2, "batch_size": 64, "lr": 0.01, "threads": 1},
            "eval": {"ks": [10]},
        }
    )


@pytest.fixture(scope="module")
def runs(make_dataset, tmp_path_factory) -> list[Path]:
    """Two fitted runs; the first also has the per-head and per-category breakdowns, the second neither."""
    items = pl.DataFrame(
        {
            "item": [f"i{i}" for i in range(N_ITEMS)],
            "title": [f"item {i}" for i in range(N_ITEMS)],
            "categories": [["even" if i % 2 == 0 else "odd", f"block{i // 5}"] for i in range(N_ITEMS)],
        }
    )
    dataset = make_dataset(cyclic_rows(), source="cyclic.csv", items=items)
    root = tmp_path_factory.mktemp("runs")
    folders = [root / "sasrec-tiny", root / "gru4rec <i>&co"]
    Recommender(tiny_config({"name": "sasrec", "n_blocks": 1})).fit(dataset, out=folders[0])
    Recommender(tiny_config({"name": "gru4rec"})).fit(dataset, out=folders[1])
    breakdowns = [{"test_heads": HEADS, "test_by_category": CATEGORIES}, {}]
    for folder, extra in zip(folders, breakdowns, strict=True):
        path = folder / "metrics.json"
        metrics = json.loads(path.read_text())
        metrics.pop("test_heads", None)
        metrics.pop("test_by_category", None)
        path.write_text(json.dumps(metrics | extra))
    return folders


@pytest.fixture(scope="module")
def page(intentrec, runs, tmp_path_factory) -> Path:
    """The report, written by the command as a user would."""
    out = tmp_path_factory.mktemp("report") / "report.html"
    done = intentrec("report", *runs, "--out", out)
    assert str(out) in done.stderr
    return out


def test_the_page_shows_every_run_with_its_metrics_and_is_self_contained(runs, page) -> None:
    text = page.read_text(encoding="utf-8")
    assert text.count("<tr><td>sasrec-tiny</td>") == 1
    assert "gru4rec &lt;i&gt;&amp;co" in text and "<i>&co" not in text
    for folder in runs:
        metrics = json.loads((folder / "metrics.json").read_text())
        for key, _ in METRICS:
            assert f"<td>{metrics['test'][key]:.4f}</td>" in text, key
        assert f"<td>{metrics['timing']['fit_seconds']:.1f}</td>" in text
        stopped = metrics["stopped"].replace("_", " ")  # why it ended: a run cut short says so
        assert f"<td>{metrics['epochs']}</td><td>{stopped}</td>" in text
        assert f"<td>{metrics['parameters']['backbone']:,}</td>" in text
    assert "—" not in text  # every column names a metric the runs really have
    assert 'src="http' not in text and 'href="http' not in text and "<script" not in text.lower()
    assert text.count('<img src="data:image/png;base64,') == PLOTS


def test_breakdowns_are_shown_only_for_runs_that_have_them(page) -> None:
    text = page.read_text(encoding="utf-8")
    assert "<h2>Prior heads</h2>" in text and "<h2>Categories</h2>" in text
    assert "<td>Drama &lt;b&gt;</td><td>25.0%</td>" in text
    assert f"<td>{html.escape('<script>alert(1)</script>')}</td><td>7</td><td>0.5000</td>" in text
    assert text.count("<caption>sasrec-tiny</caption>") == 2
    assert "<caption>gru4rec" not in text


def test_an_unfinished_run_shows_its_curves_and_no_metrics(runs, tmp_path) -> None:
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    for name in ("config.json", "history.jsonl"):
        shutil.copy(runs[1] / name, unfinished / name)
    text = write_report([unfinished], tmp_path / "page.html").read_text(encoding="utf-8")
    assert "(not finished: no metrics.json)" in text
    assert "No run has these values." in text  # the two accuracy-against-diversity plots
    assert text.count('<img src="data:image/png;base64,') == 2  # the training curves


def test_a_run_measured_at_other_cutoffs_is_said_to_be_so(runs, tmp_path) -> None:
    other = tmp_path / "at-20"
    shutil.copytree(runs[0], other)
    metrics = json.loads((other / "metrics.json").read_text())
    metrics["test"] = {key.replace("@10", "@20"): value for key, value in metrics["test"].items()}
    (other / "metrics.json").write_text(json.dumps(metrics))
    text = write_report([runs[0], other], tmp_path / "page.html").read_text(encoding="utf-8")
    assert "Not measured at K = 10 (eval.ks without 10), so shown as missing: at-20." in text
    assert "Not measured at K = 10" not in write_report([runs[0]], tmp_path / "one.html").read_text("utf-8")


def test_a_missing_run_folder_is_a_one_line_error(intentrec, runs, tmp_path) -> None:
    missing = tmp_path / "[bold]nope"  # printed as it is, not read as rich markup
    done = intentrec("report", runs[0], missing, "--out", tmp_path / "page.html", expect=2)
    message = done.stderr.strip()
    assert "\n" not in message
    assert message == f"error: {missing}: no such run folder."
    assert not (tmp_path / "page.html").exists()


def test_a_folder_or_file_in_the_wrong_place_is_named_before_the_page_is_made(intentrec, runs, tmp_path):
    done = intentrec("report", runs[0], "--out", tmp_path, expect=2)
    assert (
        done.stderr.strip()
        == f"error: --out {tmp_path}: that is a folder; give the name of the file to write."
    )
    done = intentrec("report", runs[0] / "config.json", "--out", tmp_path / "page.html", expect=2)
    assert done.stderr.strip() == f"error: {runs[0] / 'config.json'}: a file, not a run folder."


def _broken_metrics(folder: Path) -> None:
    (folder / "config.json").write_text("{}")
    (folder / "metrics.json").write_text('{"test": ')


def _broken_history(folder: Path) -> None:
    (folder / "config.json").write_text("{}")
    (folder / "history.jsonl").write_text('{"epoch": 1}\n[1, 2]\n')


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(lambda folder: None, "not an IntentRec run (no config.json)", id="no-config"),
        pytest.param(
            lambda folder: (folder / "config.json").write_text("[]"),
            "config.json: expected a JSON object, found list",
            id="config-not-an-object",
        ),
        pytest.param(_broken_metrics, "metrics.json:1: not valid JSON", id="metrics-not-json"),
        pytest.param(_broken_history, "history.jsonl:2: expected a JSON object, found list", id="history"),
        pytest.param(
            lambda folder: (folder / "config.json").write_text('{"model": 5}'),
            "config.json: 'model' should hold its settings, found 5",
            id="config-section-not-a-table",
        ),
        pytest.param(
            lambda folder: (folder / "config.json").write_bytes(b'{"model": "\xff"}'),
            "config.json: not a UTF-8 text file",
            id="config-not-text",
        ),
    ],
)
def test_a_folder_that_is_not_a_readable_run_is_named(tmp_path, make, message) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    make(folder)
    with pytest.raises(ReportError, match=re.escape(str(folder)) + ".*" + re.escape(message)):
        read_runs([folder])


def test_no_run_or_the_same_run_twice_is_an_error(runs, tmp_path) -> None:
    with pytest.raises(ReportError, match="at least one run folder"):
        read_runs([])
    with pytest.raises(ReportError, match="the same run folder is given twice"):
        read_runs([runs[0], runs[0]])
    link = tmp_path / "link"
    link.symlink_to(runs[0])
    for other in (link, runs[0].parent / ".." / runs[0].parent.name / runs[0].name):
        with pytest.raises(ReportError, match="the same run folder is given twice"):
            read_runs([runs[0], other])


def test_the_report_never_replaces_a_file_of_a_run_it_reads(runs) -> None:
    for name in ("config.json", "metrics.json", "dataset/card.json"):
        before = (runs[0] / name).read_bytes()
        with pytest.raises(ConfigError, match=f"that is a file of the run {runs[0]}"):
            write_report(runs, runs[0] / name)
        assert (runs[0] / name).read_bytes() == before


def test_the_report_replaces_only_a_report(runs, tmp_path) -> None:
    out = tmp_path / "report.html"
    write_report(runs, out)
    write_report(runs[:1], out)  # a rerun replaces its own page
    notes = tmp_path / "notes.html"
    notes.write_text("<html><title>my notes</title></html>")
    with pytest.raises(ReportError, match=f"--out {notes}: the file exists and is no report"):
        write_report(runs, notes)
    assert notes.read_text() == "<html><title>my notes</title></html>"


def test_runs_that_share_a_folder_name_are_told_apart_by_their_path(runs, tmp_path) -> None:
    other = tmp_path / "sasrec-tiny"
    shutil.copytree(runs[0], other, ignore=shutil.ignore_patterns("dataset", "*.safetensors"))
    assert [run.name for run in read_runs([runs[0], other])] == [str(runs[0]), str(other)]


@pytest.mark.skipif(
    not (CHROMIUM.is_file() and CHROMEDRIVER.is_file()),
    reason=f"needs {CHROMIUM} and {CHROMEDRIVER} (Debian: apt-get install chromium chromium-driver)",
)
def test_chromium_shows_the_tables_and_every_plot(page, tmp_path) -> None:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1400,1000",
    ):  # fmt: skip
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    try:
        driver.get(page.as_uri())
        shown = driver.find_element(By.TAG_NAME, "body").text
        for name in ("sasrec-tiny", "gru4rec <i>&co", "<script>alert(1)</script>", "Drama <b>"):
            assert name in shown, name
        headers = [header.text for header in driver.find_elements(By.CSS_SELECTOR, "table th")]
        for header in (
            "run",
            "backbone",
            "priors",
            *(label for _, label in METRICS),
            "best epoch",
            "stopped",
        ):
            assert header in headers, header
        images = driver.find_elements(By.TAG_NAME, "img")
        assert len(images) == PLOTS
        for image in images:
            loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
            assert loaded > 0, image.get_attribute("alt")
    finally:
        driver.quit()


def test_a_single_epoch_gets_whole_epoch_ticks(monkeypatch) -> None:
    monkeypatch.setattr(plots, "_png", lambda figure: figure)  # the figure itself, to read its axis
    run = RunSummary("one", "sasrec", "none", {}, [{"epoch": 1, "loss": 2.0}])
    figure = plots.curves([run], "loss", "loss")
    figure.canvas.draw()
    (axes,) = figure.axes
    low, high = axes.get_xlim()
    assert [tick for tick in axes.get_xticks() if low <= tick <= high] == [1.0]
