"""The public verbs on a learnable synthetic log: fit, evaluate, recommend in raw IDs, save and load.

Every user walks the cycle ``i0 -> i1 -> ... -> i29 -> i0`` from a random start, so the next item is fully
determined by the last one: a working model must reach a near-perfect HR@10 (a random one gets about 0.4).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import polars as pl
import pytest
import torch
from safetensors.torch import save_file

from cyclic_log import N_ITEMS, cyclic_rows, tiny_config
from intentrec.config import RunConfig
from intentrec.data.load import DataConfig
from intentrec.errors import ConfigError, DataError, IntentRecError
from intentrec.evaluation.beyond_accuracy import ItemFeatures
from intentrec.recommender import NotFittedError, Recommender


def next_item(item: str) -> str:
    return f"i{(int(item[1:]) + 1) % N_ITEMS}"


def seen_items(recommender: Recommender) -> dict[str, set[str]]:
    dataset = recommender.dataset
    table = dataset.interactions.join(dataset.users, on="user_idx").join(
        dataset.items.select("item_idx", "item"), on="item_idx"
    )
    return {user: set(items) for user, items in table.group_by("user").agg("item").iter_rows()}


def last_items() -> dict[str, str]:
    """Each user's most recent item (the rows are in time order within a user)."""
    return {user: item for user, item, _ in cyclic_rows()}


# --- fit and evaluate --------------------------------------------------------------------------------------


def test_fit_learns_the_cycle(fitted) -> None:
    recommender, out = fitted
    metrics = recommender.metrics
    assert metrics["test"]["hr@10"] > 0.9
    assert metrics["valid"]["hr@10"] > 0.9
    assert metrics["stopped"] in ("max_epochs", "early_stopping")
    assert 1 <= metrics["best_epoch"] <= metrics["epochs"] <= 8
    for path in ("config.json", "dataset", "model.safetensors", "last.safetensors", "metrics.json"):
        assert (out / path).exists(), path
    history = (out / "history.jsonl").read_text().splitlines()
    assert len(history) == metrics["epochs"]


def test_evaluate_repeats_the_fit_time_metrics(fitted) -> None:
    recommender, _ = fitted
    assert recommender.evaluate("test") == recommender.metrics["test"]
    assert recommender.evaluate("valid") == recommender.metrics["valid"]


def test_evaluate_measures_diversity_over_other_categories(fitted) -> None:
    recommender, _ = fitted
    default = ItemFeatures.from_dataset(recommender.dataset, recommender.split.train)
    n_items = default.categories.shape[0]
    halves = torch.stack([torch.arange(n_items) % 2 == 0, torch.arange(n_items) % 2 == 1], dim=1)
    one_group = recommender.evaluate("test", features=default.regrouped(torch.ones(n_items, 1), ["all"]))
    two_groups = recommender.evaluate("test", features=default.regrouped(halves, ["even", "odd"]))
    entropies = [name for name in one_group if name.startswith("entropy@")]
    assert entropies and all(one_group[name] == 0 for name in entropies)  # one category: no spread
    assert all(two_groups[name] > 0 for name in entropies if name != "entropy@1")  # one item: no spread
    assert one_group["ndcg@10"] == two_groups["ndcg@10"] == recommender.metrics["test"]["ndcg@10"]
    with pytest.raises(ValueError, match=r"expected shape \(\d+, 2\), got \(\d+, 1\)"):
        default.regrouped(torch.ones(n_items, 1), ["a", "b"])
    fewer = ItemFeatures(halves[:-1], ["even", "odd"], default.train_counts[:-1])
    with pytest.raises(ValueError, match=f"describe {n_items - 1} items; this model ranks {n_items}"):
        recommender.evaluate("test", features=fewer)


def test_ranking_on_a_cpu_keeps_chunks_under_the_event_limit(fitted, monkeypatch) -> None:
    recommender, _ = fitted
    before = recommender.evaluate("test")
    monkeypatch.setattr("intentrec.evaluation.evaluator.CPU_CHUNK_EVENTS", 12)  # eval.chunk_events is None
    shapes: list[tuple[int, int]] = []
    forward = recommender.model.forward

    def recording_forward(items: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        shapes.append(tuple(items.shape))
        return forward(items, *args, **kwargs)

    monkeypatch.setattr(recommender.model, "forward", recording_forward)
    assert recommender.evaluate("test") == before
    recommender.recommend(k=3)
    assert shapes and all(rows * width <= 12 or rows == 1 for rows, width in shapes)


def test_config_json_of_the_run_reloads_to_the_same_config(fitted) -> None:
    recommender, out = fitted
    assert RunConfig.from_file(out / "config.json") == recommender.config


def test_a_split_that_leaves_nothing_to_train_on_is_refused_before_any_file(make_dataset, tmp_path) -> None:
    # three events a user: leave-one-out keeps one of them to train on, an input without a target
    three = make_dataset([(user, 10 + t, 100 + t) for user in range(4) for t in range(3)], source="three.csv")
    with pytest.raises(DataError, match=r"three\.csv: the leave_one_out split leaves no user two events"):
        Recommender(tiny_config()).fit(three, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


# --- devices -----------------------------------------------------------------------------------------------


def test_a_device_torch_does_not_know_or_this_machine_lacks_is_a_clear_error(cyclic, tmp_path) -> None:
    # checked when fit starts, before any file of the run is written; cuda:63 exists on no machine
    with pytest.raises(IntentRecError, match=r"^train\.device 'gpu0': not a torch device"):
        Recommender(tiny_config(device="gpu0")).fit(cyclic, out=tmp_path / "run")
    with pytest.raises(IntentRecError, match=r"^train\.device 'cuda:63': this machine has no such device"):
        Recommender(tiny_config(device="cuda:63")).fit(cyclic, out=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_load_ranks_on_the_device_asked_for_and_names_a_wrong_one(fitted) -> None:
    _, out = fitted
    with pytest.raises(IntentRecError, match=r"^device 'gpu0': not a torch device"):
        Recommender.load(out, device="gpu0")
    with pytest.raises(IntentRecError, match=r"^device 'cuda:63': this machine has no such device"):
        Recommender.load(out, device="cuda:63")


def test_load_in_bfloat16_ranks_nearly_as_float32_and_names_a_wrong_precision(fitted) -> None:
    recommender, out = fitted
    low = Recommender.load(out, precision="bfloat16")
    assert low.model.inference_dtype == "bfloat16"
    for split in ("valid", "test"):
        exact, approximate = recommender.metrics[split], low.evaluate(split)
        assert approximate.keys() == exact.keys()
        assert all(abs(approximate[name] - exact[name]) < 0.05 for name in exact), split
    with pytest.raises(IntentRecError, match=r"^precision 'float16': expected one of float32, bfloat16"):
        Recommender.load(out, precision="float16")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("priors", [[], ["taxonomy", "horizon"]])
def test_fit_on_a_gpu_then_rank_and_serve_from_the_cpu(make_dataset, tmp_path, priors) -> None:
    parity = [["even"] if i % 2 == 0 else ["odd"] for i in range(N_ITEMS)]
    dataset = make_dataset(cyclic_rows(), categories=parity)
    config = tiny_config(device="cuda").model_dump()
    config["heads"]["priors"] = priors
    recommender = Recommender(RunConfig.model_validate(config)).fit(dataset, out=tmp_path / "gpu")
    assert recommender.metrics["test"]["hr@10"] > 0.9
    assert recommender.item_vectors().device.type == "cpu"
    on_gpu = recommender.recommend(["u1", "u42"], k=5)
    loaded = Recommender.load(tmp_path / "gpu")  # weights load on the CPU
    assert next(loaded.model.parameters()).device.type == "cpu"
    assert loaded.recommend(["u1", "u42"], k=5)["item"].equals(on_gpu["item"])
    assert loaded.evaluate("test")["hr@10"] == pytest.approx(recommender.metrics["test"]["hr@10"], abs=0.02)


def heads_on(backbone_run: Path | str, loss: dict | None = None, **model) -> RunConfig:
    """Parity heads fitted on the frozen backbone of ``backbone_run`` (``loss``, ``model``: settings
    changed)."""
    config = tiny_config(epochs=3).model_dump(mode="json")
    config["model"].update(model)
    config["loss"].update(loss or {})
    config["heads"].update(priors=["taxonomy"], backbone_from=str(backbone_run))
    return RunConfig.from_dict(config)


def parity_dataset(make_dataset, rows=None):
    """The cyclic log with the categories "even" and "odd" on its items."""
    parity = [["even"] if i % 2 == 0 else ["odd"] for i in range(N_ITEMS)]
    return make_dataset(rows or cyclic_rows(), categories=parity)


def test_heads_fitted_on_a_trained_backbone_leave_it_as_it_was(fitted, make_dataset, tmp_path) -> None:
    """``heads.backbone_from``: only the heads learn; the backbone and items are the source run's, bit for
    bit, and the run loads on its own."""
    source, source_out = fitted
    recommender = Recommender(heads_on(source_out)).fit(parity_dataset(make_dataset), out=tmp_path / "heads")
    assert recommender.model.heads.weight.abs().sum() > 0  # the heads start at zero: they learned
    state = recommender.model.state_dict()
    for name, tensor in source.model.state_dict().items():
        assert torch.equal(state[name], tensor), name
    assert recommender.metrics["test"]["hr@10"] > 0.9
    loaded = Recommender.load(tmp_path / "heads")
    assert loaded.evaluate("test") == recommender.metrics["test"]


def test_heads_on_a_backbone_trained_otherwise_are_refused_with_what_differs(
    fitted, make_dataset, tmp_path
) -> None:
    _, source_out = fitted
    with pytest.raises(ConfigError, match=r"model\.dim: 16 there, 8 here"):
        Recommender(heads_on(source_out, dim=8)).fit(parity_dataset(make_dataset))
    with pytest.raises(ConfigError, match=r"in model\.name: 'sasrec' there, 'hstu' here\. "):
        Recommender(heads_on(source_out, name="hstu")).fit(parity_dataset(make_dataset))
    # the backbone's own scores join the heads' at the temperature it was trained with
    with pytest.raises(ConfigError, match=r"loss\.temperature: 1\.0 there, 0\.1 here"):
        Recommender(heads_on(source_out, loss={"temperature": 0.1})).fit(parity_dataset(make_dataset))
    other_log = parity_dataset(make_dataset, cyclic_rows(seed=1))
    with pytest.raises(ConfigError, match="differs from this one in the dataset"):
        Recommender(heads_on(source_out)).fit(other_log)
    with pytest.raises(ConfigError, match=r"heads\.backbone_from: .* not an IntentRec run"):
        Recommender(heads_on(tmp_path)).fit(parity_dataset(make_dataset))
    with pytest.raises(ConfigError, match="name them in priors"):
        RunConfig.from_dict({"heads": {"backbone_from": str(source_out)}})


# --- recommend ---------------------------------------------------------------------------------------------


def test_recommend_speaks_raw_ids_and_never_returns_seen_items(fitted) -> None:
    recommender, _ = fitted
    users = ["u7", "u3", "u150"]
    table = recommender.recommend(users, k=5)
    assert table.columns == ["user", "rank", "item", "score", "head"]
    assert set(table["head"]) == {"next"}  # no prior heads: the model's own next-item head
    assert table.schema["user"] == pl.String and table.schema["item"] == pl.String
    assert table["user"].unique(maintain_order=True).to_list() == users  # in the order asked
    seen, last = seen_items(recommender), last_items()
    for user, group in table.group_by("user", maintain_order=True):
        user = user[0]
        assert group["rank"].to_list() == [1, 2, 3, 4, 5]
        assert group["score"].is_sorted(descending=True)
        assert not set(group["item"]) & seen[user]
        assert group["item"][0] == next_item(last[user])  # the model learned what comes next


def test_one_user_id_is_one_user_and_k_and_the_split_are_checked(fitted) -> None:
    recommender, _ = fitted
    assert recommender.recommend("u1", k=3).equals(recommender.recommend(["u1"], k=3))
    for k in (2.5, True, "3"):
        with pytest.raises(ConfigError, match=rf"k = {k!r}: expected a whole number of items"):
            recommender.recommend(["u1"], k=k)
    for on in ("train", "foo"):
        with pytest.raises(ConfigError, match=rf"on = '{on}': evaluate on 'valid' or 'test'"):
            recommender.evaluate(on)
        with pytest.raises(ConfigError, match=rf"on = '{on}'"):
            recommender.breakdown(on)


def test_recommend_without_filter_may_return_seen_items(fitted) -> None:
    recommender, _ = fitted
    table = recommender.recommend(["u7"], k=N_ITEMS, filter_seen=False)
    assert table.height == N_ITEMS  # the whole catalogue
    assert set(table["item"]) >= seen_items(recommender)["u7"]


def test_recommend_every_user_by_default(fitted) -> None:
    recommender, _ = fitted
    table = recommender.recommend(k=3)
    assert table.height == 3 * recommender.dataset.n_users
    assert set(table["user"]) == set(recommender.dataset.users["user"])


@pytest.mark.parametrize("users", [["u7", "u999"], [7]])
def test_recommend_names_unknown_users(fitted, users) -> None:
    recommender, _ = fitted
    with pytest.raises(IntentRecError, match=f"unknown user id.*{users[-1]}"):
        recommender.recommend(users)


# --- save and load -----------------------------------------------------------------------------------------


def test_load_gives_the_same_recommendations_and_metrics(fitted, tmp_path) -> None:
    recommender, out = fitted
    expected = recommender.recommend(["u1", "u42"], k=7)
    for folder in (out, recommender.save(tmp_path / "saved")):
        loaded = Recommender.load(folder)
        assert loaded.config == recommender.config
        assert loaded.metrics == recommender.metrics
        assert loaded.recommend(["u1", "u42"], k=7).equals(expected)
        assert loaded.evaluate("test") == recommender.metrics["test"]
        assert loaded.evaluate("valid") == recommender.metrics["valid"]


def test_not_fitted(tmp_path) -> None:
    recommender = Recommender()
    for call in (recommender.recommend, recommender.evaluate, lambda: recommender.save(tmp_path)):
        with pytest.raises(NotFittedError, match="not fitted"):
            call()
    assert issubclass(NotFittedError, IntentRecError)


def test_load_refuses_folders_that_are_not_runs(tmp_path) -> None:
    with pytest.raises(IntentRecError, match="not an IntentRec run"):
        Recommender.load(tmp_path)
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(IntentRecError, match=r"no model\.safetensors"):
        Recommender.load(tmp_path)


def test_fit_writes_only_into_a_new_or_empty_folder_or_over_a_run_it_may_replace(cyclic, tmp_path) -> None:
    run = tmp_path / "run"
    Recommender(tiny_config(epochs=1)).fit(cyclic, out=run)
    (run / "index.faiss").write_bytes(b"an index of the old run")
    with pytest.raises(ConfigError, match=f"--out {run}: the folder already holds a run; .*--overwrite"):
        Recommender(tiny_config(epochs=1)).fit(cyclic, out=run)
    broken = tiny_config(epochs=1).model_copy(update={"data": DataConfig(path=str(tmp_path / "missing.csv"))})
    with pytest.raises(IntentRecError, match=r"missing\.csv"):  # a mistake found before training
        Recommender(broken).fit(out=run, overwrite=True)
    assert (run / "index.faiss").is_file()  # ... deletes nothing
    Recommender(tiny_config(epochs=2)).fit(cyclic, out=run, overwrite=True)
    assert not (run / "index.faiss").exists()  # nothing of the old run outlives it
    assert len((run / "history.jsonl").read_text().splitlines()) == 2
    assert (run / "train.log").read_text().count("fit sasrec") == 1

    mine = tmp_path / "mine"
    (mine / "dataset").mkdir(parents=True)
    (mine / "config.json").write_text("{}")  # a config.json alone is not a run: nothing here is deleted
    (mine / "notes.txt").write_text("keep")
    (tmp_path / "file").write_text("keep")
    for out, words in (
        (mine, "the folder holds other files and no IntentRec run"),
        (tmp_path / "file", "that is a file"),
        (tmp_path / "file" / "run", f"{tmp_path / 'file'} is a file, so no folder can be made below it"),
    ):
        for overwrite in (False, True):
            with pytest.raises(ConfigError, match=f"--out {out}: {words}"):
                Recommender(tiny_config(epochs=1)).fit(cyclic, out=out, overwrite=overwrite)
    assert (mine / "notes.txt").read_text() == (tmp_path / "file").read_text() == "keep"
    assert sorted(path.name for path in mine.iterdir()) == ["config.json", "dataset", "notes.txt"]
    with pytest.raises(ConfigError, match="out is empty"):
        Recommender(tiny_config(epochs=1)).fit(cyclic, out="")


def test_a_run_that_keeps_no_weights_leaves_the_folder_as_it_was(cyclic, tmp_path, monkeypatch) -> None:
    run = tmp_path / "run"
    Recommender(tiny_config(epochs=1)).fit(cyclic, out=run)
    old = {path.relative_to(run): path.read_bytes() for path in run.rglob("*") if path.is_file()}

    def interrupted_in_its_first_epoch(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("intentrec.recommender.train", interrupted_in_its_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        Recommender(tiny_config(epochs=2)).fit(cyclic, out=run, overwrite=True)
    assert {path.relative_to(run): path.read_bytes() for path in run.rglob("*") if path.is_file()} == old
    assert [path.name for path in tmp_path.iterdir()] == ["run"]  # nothing set aside is left behind
    with pytest.raises(KeyboardInterrupt):  # a new run: its folder is not left half-written
        Recommender(tiny_config(epochs=2)).fit(cyclic, out=tmp_path / "new")
    assert not (tmp_path / "new").exists()
    (tmp_path / "empty").mkdir()  # a folder the user made stays, empty
    with pytest.raises(KeyboardInterrupt):
        Recommender(tiny_config(epochs=2)).fit(cyclic, out=tmp_path / "empty")
    assert (tmp_path / "empty").is_dir() and not any((tmp_path / "empty").iterdir())

    (tmp_path / ".run.replaced").mkdir()  # what an --overwrite killed outright leaves
    with pytest.raises(
        ConfigError, match=r"\.run\.replaced holds the run an interrupted --overwrite set aside"
    ):
        Recommender(tiny_config(epochs=1)).fit(cyclic, out=run, overwrite=True)


def test_load_names_damaged_weights_and_datasets(fitted, tmp_path) -> None:
    copies = iter(range(100))

    def damaged(name: str, content: bytes) -> Path:
        run = tmp_path / f"copy{next(copies)}"
        shutil.copytree(fitted[1], run)
        (run / name).write_bytes(content)
        return run

    weights = (fitted[1] / "model.safetensors").read_bytes()
    for content in (weights[: len(weights) // 2], b"", b"\xff" * 64):
        with pytest.raises(IntentRecError, match=r"model\.safetensors: unreadable weights"):
            Recommender.load(damaged("model.safetensors", content))
    save_file({"item_embedding.weight": torch.zeros(3, 2)}, str(tmp_path / "other.safetensors"))
    other = (tmp_path / "other.safetensors").read_bytes()
    with pytest.raises(
        IntentRecError, match=r"model\.safetensors: not the weights of the model config\.json"
    ):
        Recommender.load(damaged("model.safetensors", other))
    with pytest.raises(IntentRecError, match=r"interactions\.parquet: unreadable table of a saved dataset"):
        Recommender.load(damaged("dataset/interactions.parquet", b"not parquet"))
    with pytest.raises(IntentRecError, match=r"card\.json: not a dataset card written by IntentRec"):
        Recommender.load(damaged("dataset/card.json", b"{"))
    card = json.loads((fitted[1] / "dataset" / "card.json").read_text())
    with pytest.raises(IntentRecError, match=r"IntentRec \(n_users: expected a number\)\.$"):
        Recommender.load(damaged("dataset/card.json", json.dumps({**card, "n_users": "x"}).encode()))


def test_the_api_says_what_it_takes(fitted, tmp_path, caplog) -> None:
    recommender, run = fitted
    assert Recommender({"train": {"epochs": 3}}).config.train.epochs == 3  # a dict of settings
    with pytest.raises(TypeError, match="expected a RunConfig or a dict of settings, not int"):
        Recommender(42)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"expected a Dataset, not str: .*set data\.path"):
        Recommender(tiny_config()).fit("log.csv")  # type: ignore[arg-type]
    # one item alone is a history of one item, as one user alone is one user
    assert recommender.recommend_history("i3", k=3).equals(recommender.recommend_history(["i3"], k=3))
    for call, words in (
        (
            lambda: recommender.recommend_history(["i3"], unknown_items="rejct"),
            "expected 'ignore' or 'reject'",
        ),
        (lambda: recommender.recommend_history({"i3", "i4"}), "give a list of IDs or names, in order"),
        (lambda: recommender.recommend_history(b"i3"), "give a list of IDs or names, in order"),
        (lambda: recommender.recommend_history(None), "the history is empty"),
        (lambda: recommender.recommend(["u1"], at="2020"), "at='2020': give a time in the log's unit"),
        (lambda: recommender.recommend(["u1"], include_categories=[None]), "expected a category's name"),
    ):
        with pytest.raises(IntentRecError, match=words):
            call()
    copy = tmp_path / "damaged"  # a damaged metrics.json: the model still loads, without it
    shutil.copytree(run, copy)
    (copy / "metrics.json").write_text('{"test": ')
    assert Recommender.load(copy).metrics == {} and "metrics.json: damaged, not read" in caplog.text


def test_recommend_asks_for_at_least_one_item(fitted) -> None:
    recommender, _ = fitted
    for call in (
        lambda: recommender.recommend(["u1"], k=0),
        lambda: recommender.recommend_history(["i1"], k=0),
    ):
        with pytest.raises(IntentRecError, match="k = 0: ask for at least one item"):
            call()


def test_recommend_for_a_history_brought_by_a_new_user(fitted) -> None:
    recommender, _ = fitted
    table = recommender.recommend_history(["i3", "i4"], k=3)
    assert table.columns == ["rank", "item", "score", "head"] and table["rank"].to_list() == [1, 2, 3]
    assert table["item"][0] == "i5" and not {"i3", "i4"} & set(table["item"])
    with pytest.raises(IntentRecError, match=r"not in the catalogue: \['x'\]"):
        recommender.recommend_history(["i3", "x"], unknown_items="reject")
