"""RunConfig: errors name the dotted field and suggest the nearest name; files and --set overrides load."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from intentrec.config import RunConfig, apply_overrides
from intentrec.errors import ConfigError, IntentRecError
from intentrec.storage import write_json


@pytest.mark.parametrize(
    ("values", "field", "suggestion"),
    [
        ({"train": {"lrr": 0.1}}, "train.lrr", "lr"),
        ({"trian": {}}, "trian", "train"),
        ({"model": {"dimm": 8}}, "model.dimm", "dim"),
        (
            {"data": {"filters": {"min_user_interaction": 5}}},
            "data.filters.min_user_interaction",
            "min_user_interactions",
        ),
        ({"data": {"columns": {"usr": "userId"}}}, "data.columns.usr", "user"),  # an optional section
        ({"loss": {"xyz": 1}}, "loss.xyz", None),
    ],
)
def test_unknown_key_names_the_field_and_suggests(values, field, suggestion) -> None:
    with pytest.raises(ConfigError) as error:
        RunConfig.from_dict(values, "my.toml")
    message = str(error.value)
    assert message.startswith("my.toml: invalid configuration")
    assert f"{field}: unknown field" in message
    if suggestion:
        assert f"(did you mean '{suggestion}'?)" in message
    else:
        assert "did you mean" not in message


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"train": {"epochs": "many"}}, "train.epochs"),
        ({"train": {"lr": -1}}, "train.lr"),
        ({"train": {"seed": -1}}, "train.seed"),  # numpy's seeds are 0 to 2**32 - 1: found before the data
        ({"train": {"seed": 2**32}}, "train.seed"),
        ({"train": {"betas": [0.9]}}, r"train\.betas\.1"),  # the second beta is missing
        ({"train": {"betas": [0.9, 1.0]}}, r"train\.betas\.1"),  # AdamW's would fail after the run started
        ({"model": {"name": "bert4rec"}}, "model.name"),
        ({"loss": {"kind": "bpr"}}, "loss.kind"),
        ({"eval": {"ks": [0, 10]}}, "eval.ks"),
        ({"eval": {"ks": [10, 10]}}, "eval.ks"),
        ({"split": {"kind": "temporal", "valid_cut": 0.9, "test_cut": 0.5}}, "split"),
        ({"data": {"filters": {"duplicates": "drop"}}}, "data.filters.duplicates"),
        ({"data": {"path": ""}}, "data.path"),  # would read the working folder
        ({"model": {"dim": 16, "n_heads": 3}}, r"model(?=: model\.n_heads \(3\) must divide model\.dim)"),
    ],
)
def test_bad_values_name_the_field(values, field) -> None:
    with pytest.raises(ConfigError, match=rf"\n  {field}: .*\(got "):
        RunConfig.from_dict(values)


@pytest.mark.parametrize(
    ("values", "field"),
    [
        ({"train": {"lr": math.inf}}, "train.lr"),  # lr > 0 holds for infinity
        ({"train": {"betas": [0.9, math.inf]}}, r"train\.betas\.1"),
        ({"heads": {"backbone_weight": math.inf}}, "heads.backbone_weight"),
        ({"train": {"max_minutes": math.nan}}, "train.max_minutes"),
    ],
)
def test_an_infinite_number_is_refused_naming_the_field(values, field) -> None:
    with pytest.raises(ConfigError, match=rf"\n  {field}: Input should be a finite number \(got (inf|nan)\)"):
        RunConfig.from_dict(values)


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"train": {"epochs": True}}, "train.epochs", "a number"),  # lax pydantic: one epoch
        ({"model": {"dropout": False}}, "model.dropout", "a number"),
        ({"eval": {"chunk_events": "8192"}}, "eval.chunk_events", "a number"),  # an optional number
        ({"loss": {"normalize": "yes"}}, "loss.normalize", "true or false"),
        ({"loss": {"normalize": 1}}, "loss.normalize", "true or false"),
        ({"model": {"name": "hstu", "n_blocks": True}}, "model.n_blocks", "a number"),  # inside the union
        ({"eval": {"ks": [True, 10]}}, r"eval\.ks\.0", "a number"),  # in a list
        ({"train": {"betas": [0.9, "0.98"]}}, r"train\.betas\.1", "a number"),  # in a tuple
        ({"heads": {"priors": ["taxonomy"]}, "train": {"epochs": "5"}}, "train.epochs", "a number"),
    ],
)
def test_a_plain_value_of_the_wrong_kind_is_refused(values, field, expected) -> None:
    with pytest.raises(ConfigError, match=rf"\n  {field}: expected {expected} \(got "):
        RunConfig.from_dict(values)
    assert RunConfig.from_dict({"loss": {"temperature": 1}}).loss.temperature == 1.0  # an integer is a float


def test_every_problem_is_listed_at_once() -> None:
    with pytest.raises(ConfigError) as error:
        RunConfig.from_dict({"train": {"lrr": 1, "epochs": 0}, "model": {"dim": "x"}})
    assert str(error.value).count("\n  ") == 3


def test_monitor_must_be_a_measured_metric() -> None:
    with pytest.raises(ConfigError, match=r"train\.monitor 'ndcg@20' .*eval\.ks \[5, 10\].*'ndcg@10'"):
        RunConfig.from_dict({"train": {"monitor": "ndcg@20"}, "eval": {"ks": [5, 10]}})
    assert RunConfig.from_dict({"train": {"monitor": "hr@5"}, "eval": {"ks": [5]}}).train.monitor == "hr@5"


def test_config_error_is_a_user_error() -> None:
    assert issubclass(ConfigError, IntentRecError)


# --- overrides ---------------------------------------------------------------------------------------------


def test_apply_overrides_parses_json_values() -> None:
    values = apply_overrides(
        {"train": {"epochs": 3}},
        [
            "train.lr=0.005",
            "train.betas=[0.8, 0.9]",
            "eval.filter_seen=false",
            "data.path=logs/my file.csv",  # not JSON: kept as text
            'data.format="table"',
            "model.dim=8",
            "data.filters.events=null",
            "train.epochs=5",  # a later value wins
        ],
    )
    assert values == {
        "train": {"epochs": 5, "lr": 0.005, "betas": [0.8, 0.9]},
        "eval": {"filter_seen": False},
        "data": {"path": "logs/my file.csv", "format": "table", "filters": {"events": None}},
        "model": {"dim": 8},
    }
    config = RunConfig.from_dict(values)
    assert config.train.betas == (0.8, 0.9) and config.model.dim == 8 and config.eval.filter_seen is False


@pytest.mark.parametrize("override", ["train.lr", "=0.1", "train.lr 0.1"])
def test_apply_overrides_rejects_malformed(override: str) -> None:
    with pytest.raises(ConfigError, match=r"expected section\.key=value"):
        apply_overrides({}, [override])


def test_apply_overrides_names_a_list_or_table_that_is_not_json() -> None:
    with pytest.raises(ConfigError, match=r"--set 'eval\.ks=\[1,2': the value is not valid JSON"):
        apply_overrides({}, ["eval.ks=[1,2"])
    assert apply_overrides({}, ["data.path=logs/[2024] views.csv"])["data"]["path"] == "logs/[2024] views.csv"


def test_apply_overrides_refuses_a_key_under_a_value() -> None:
    with pytest.raises(ConfigError, match="'lr' is a value, not a section"):
        apply_overrides({"train": {"lr": 0.1}}, ["train.lr.x=1"])


def test_an_override_of_an_unknown_key_is_caught_by_validation() -> None:
    values = apply_overrides({}, ["train.lrr=0.1"])
    with pytest.raises(ConfigError, match=r"train\.lrr: unknown field \(did you mean 'lr'\?\)"):
        RunConfig.from_dict(values, "command line")


# --- files -------------------------------------------------------------------------------------------------


def test_json_and_toml_files_load(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"train": {"lr": 0.002}, "model": {"dim": 32}}))
    (tmp_path / "a.toml").write_text(
        '[train]\nlr = 0.002\n\n[model]\ndim = 32\n\n[data.filters]\nevents = ["buy"]\n'
    )
    from_json = RunConfig.from_file(tmp_path / "a.json")
    from_toml = RunConfig.from_file(tmp_path / "a.toml")
    assert from_json.train.lr == from_toml.train.lr == 0.002
    assert from_json.model.dim == from_toml.model.dim == 32
    assert from_toml.data.filters.events == ["buy"]


def test_a_missing_config_file_or_a_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.toml: config file not found"):
        RunConfig.from_file(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=rf"{tmp_path}: that is a folder"):
        RunConfig.from_file(tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "error"),
    [
        ("broken.toml", b"[train\n", r"broken\.toml: not valid toml"),
        ("broken.json", b"{", r"broken\.json: not valid json"),
        ("list.json", b'[{"train": {"lr": 0.1}}]', r"list\.json: expected an object of sections .*, got \["),
        ("null.json", b"null", r"null\.json: expected an object of sections .*, got null$"),
        ("c.yaml", b"train:\n  lr: 0.1\n", r"c\.yaml: a config file is \.json or \.toml"),
        (
            "latin1.toml",
            "[data]\npath = 'café'\n".encode("latin-1"),
            r"latin1\.toml: not a UTF-8 text file \(invalid .* at byte 18\)",
        ),
        ("typo.json", b'{"train": {"lrr": 1}}', r"typo\.json: invalid configuration\n  train\.lrr"),
    ],
)
def test_a_bad_config_file_is_named_with_what_is_wrong(
    tmp_path: Path, name: str, content: bytes, error: str
) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ConfigError, match=error):
        RunConfig.from_file(tmp_path / name)


def test_a_file_saved_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    """Notepad starts UTF-8 files with a BOM; it is no mistake of the user's."""
    (tmp_path / "bom.toml").write_bytes(b"\xef\xbb\xbf[train]\nepochs = 3\n")
    (tmp_path / "bom.json").write_bytes(b'\xef\xbb\xbf{"train": {"epochs": 3}}')
    assert RunConfig.from_file(tmp_path / "bom.toml").train.epochs == 3
    assert RunConfig.from_file(tmp_path / "bom.json").train.epochs == 3


def test_the_saved_config_of_a_run_reloads_to_an_equal_config(tmp_path: Path) -> None:
    config = RunConfig.from_dict(
        {
            "data": {
                "path": "log.csv",
                "columns": {"user": "uid", "item": "sku"},
                "filters": {"events": ["a"]},
            },
            "split": {"kind": "temporal", "valid_cut": 0.8},
            "model": {"dim": 16, "dropout": 0.1},
            "loss": {"kind": "sampled_softmax", "normalize": True, "temperature": 0.05},
            "train": {"betas": [0.9, 0.99], "max_minutes": 1.5},
            "eval": {"ks": [20, 5, 10], "filter_seen": False},
        }
    )
    write_json(tmp_path / "config.json", config.to_json())  # exactly what fit(out=...) writes
    assert RunConfig.from_file(tmp_path / "config.json") == config
    assert RunConfig.from_dict(RunConfig().to_json()) == RunConfig()
