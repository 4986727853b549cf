"""The configuration of a run: every hyperparameter exists once, typed, in the component that owns it.

``RunConfig`` only composes the components' configs. It is saved as ``config.json`` with every run and
reloads to the same model. Unknown keys are rejected everywhere, with the nearest valid name suggested.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import BaseModel, Field, ValidationError, model_validator

from intentrec.data.load import DataConfig
from intentrec.data.split import SplitConfig
from intentrec.errors import ConfigError, did_you_mean
from intentrec.evaluation.evaluator import EvalConfig
from intentrec.evaluation.metrics import metric_names
from intentrec.models.fuxi import FuXiConfig
from intentrec.models.gru4rec import GRU4RecConfig
from intentrec.models.heads import HeadsConfig, Steering
from intentrec.models.hstu import HSTUConfig
from intentrec.models.sasrec import SASRecConfig
from intentrec.settings import WRONG_KIND, Settings
from intentrec.storage import read_text
from intentrec.training.losses import LossConfig
from intentrec.training.trainer import TrainConfig

#: The backbone configs, told apart by their `name` field.
BACKBONES: dict[str, type[SASRecConfig | HSTUConfig | GRU4RecConfig | FuXiConfig]] = {
    "sasrec": SASRecConfig,
    "hstu": HSTUConfig,
    "gru4rec": GRU4RecConfig,
    "fuxi": FuXiConfig,
}
BackboneConfig = Annotated[
    SASRecConfig | HSTUConfig | GRU4RecConfig | FuXiConfig, Field(discriminator="name")
]


class RunConfig(Settings):
    """Everything that defines a run: data, split, model, loss, training and evaluation."""

    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    model: BackboneConfig = Field(default_factory=SASRecConfig)
    heads: HeadsConfig = Field(default_factory=HeadsConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="before")
    @classmethod
    def _sasrec_unless_named(cls, values: Any) -> Any:
        """A model section without a ``name`` is SASRec's (the default backbone)."""
        if isinstance(values, dict) and isinstance(values.get("model"), dict):
            values = {**values, "model": {"name": "sasrec", **values["model"]}}
        return values

    @model_validator(mode="after")
    def _monitor_is_measured(self) -> RunConfig:
        # checked here, not after the first epoch of training, where validation would lack the metric
        names = metric_names(self.eval.ks)
        if self.train.monitor not in names:
            raise ValueError(
                f"train.monitor {self.train.monitor!r} is not measured with eval.ks {self.eval.ks}"
                f"{did_you_mean(self.train.monitor, names)}; choose one of {', '.join(names)}"
            )
        return self

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @classmethod
    def from_dict(cls, values: dict[str, Any], source: str = "config") -> RunConfig:
        """Validate ``values``; a mistake becomes a ConfigError naming the field, e.g. ``train.lr``."""
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ConfigError(describe(error, source)) from None

    @classmethod
    def coerce(cls, config: RunConfig | dict[str, Any] | None) -> RunConfig:
        """``config`` as a RunConfig: itself, validated from a dict of settings, or the default for None."""
        if config is None or isinstance(config, dict):
            return cls.from_dict(config or {})
        if not isinstance(config, RunConfig):
            raise TypeError(f"expected a RunConfig or a dict of settings, not {type(config).__name__}.")
        return config

    @classmethod
    def from_file(cls, path: str | Path) -> RunConfig:
        """Read and validate a ``.json`` or ``.toml`` config file."""
        return cls.from_dict(read_config_file(path), str(path))


def read_config_file(path: str | Path) -> dict[str, Any]:
    """The settings a ``.json`` or ``.toml`` config file writes, not yet validated: a command adds its
    options to them first, since a file may hold what is valid only with them (``[model] attention_dim``
    with ``--model hstu``)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {'that is a folder' if path.is_dir() else 'config file not found'}.")
    if path.suffix not in (".json", ".toml"):
        raise ConfigError(f"{path}: a config file is .json or .toml (see config.json of a run).")
    text = read_text(path, "utf-8-sig", error=ConfigError)  # a byte-order mark (Notepad) is no mistake
    try:
        values = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.')}: {error}") from None
    if not isinstance(values, dict):  # JSON can hold a list or a number, which name no setting
        raise ConfigError(
            f'{path}: expected an object of sections such as {{"train": {{"lr": 0.001}}}}, '
            f"got {json.dumps(values)[:40]}"
        )
    return values


def with_options(options: dict[str, object], sets: list[str]) -> list[str]:
    """The settings a command's own ``options`` give (``section.key``: value, None when not given) as
    ``key=json`` strings, then its ``--set`` strings. A ``--set`` of an option's setting, of a section
    holding it (``model={...}`` beside ``--model``) or of a part of it (``data.columns.user`` beside
    ``--columns``) is a ConfigError: one of the two would be dropped."""
    given = {key: value for key, value in options.items() if value is not None}
    for change in sets:
        key = change.partition("=")[0].strip()
        clash = next((option for option in given if _nested(option, key) or _nested(key, option)), None)
        if clash is not None:
            raise ConfigError(f"--set {change!r}: {clash} is already given by its own option; give it once.")
    return [f"{key}={json.dumps(value)}" for key, value in given.items()] + list(sets)


def _nested(key: str, section: str) -> bool:
    """Whether the setting ``key`` is ``section`` or lies inside it."""
    return key == section or key.startswith(f"{section}.")


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``section.key=value`` strings (value parsed as JSON when it can be) to a config dict."""
    for override in overrides:
        key, sep, raw = override.partition("=")
        if not sep or not key:
            raise ConfigError(f"--set {override!r}: expected section.key=value, e.g. train.lr=0.001")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            if raw.lstrip()[:1] in ("[", "{"):  # meant as a list or a table: plain text would hide the typo
                raise ConfigError(f"--set {override!r}: the value is not valid JSON ({error}).") from None
            value = raw
        node = values
        *parents, leaf = key.split(".")
        for parent in parents:
            node = node.setdefault(parent, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {override!r}: '{parent}' is a value, not a section")
        node[leaf] = value
    return values


def as_steering(steering: Steering | dict[str, Any] | None) -> Steering | None:
    """``steering`` as a :class:`Steering`: itself, or validated from a dict of its fields (as over HTTP)."""
    if steering is None or isinstance(steering, Steering):
        return steering
    if not isinstance(steering, dict):
        raise TypeError(
            f"steering: expected a Steering or a dict of its fields, not {type(steering).__name__}."
        )
    try:
        return Steering.model_validate(steering)
    except ValidationError as error:
        raise ConfigError(describe(error, "steering", Steering)) from None


def describe(error: ValidationError, source: str, root: type[BaseModel] | None = None) -> str:
    """The problems of a validation of ``root`` (default :class:`RunConfig`) from ``source``, one a line,
    each naming its field, with the closest known name for an unknown one."""
    lines = [f"{source}: invalid configuration"]
    for problem in error.errors():
        parts = problem["loc"]
        if parts[:1] == ("model",) and len(parts) >= 2:
            parts = ("model", *parts[2:])  # pydantic puts the backbone's name in: model.hstu.dim
        location = ".".join(str(part) for part in parts)
        message, given = problem["msg"], problem.get("input")
        if problem["type"] == "union_tag_invalid":  # an unknown backbone name
            location, given = f"{location}.name", problem["ctx"]["tag"]
            known = ", ".join(BACKBONES)
            message = f"unknown backbone{did_you_mean(given, BACKBONES)}; choose one of {known}"
        if problem["type"] == "extra_forbidden":
            parent = _model_at(problem["loc"][:-1], root or RunConfig)
            hint = did_you_mean(str(problem["loc"][-1]), parent.model_fields) if parent else ""
            message = f"unknown field{hint}"
        if problem["type"] == "value_error":  # a rule of ours: its own words, without "Value error, "
            message = str(problem["ctx"]["error"])
        if problem["type"] == WRONG_KIND:  # found by the model, about one of its fields
            location = ".".join(filter(None, (location, problem["ctx"]["field"])))
            message, given = f"expected {problem['ctx']['expected']}", problem["ctx"]["value"]
        if not location:  # a rule across sections: its message names the fields, the input is everything
            lines.append(f"  {message}")
            continue
        lines.append(f"  {location}: {message} (got {given!r})")
    return "\n".join(lines)


def _model_at(location: tuple[Any, ...], model: type[BaseModel]) -> type[BaseModel] | None:
    parts = list(location)
    while parts:
        field = model.model_fields.get(str(parts.pop(0)))
        annotation = field.annotation if field else None
        # an optional section (`ColumnMapping | None`) is the model inside it
        inside = [option for option in get_args(annotation) if option is not type(None)]
        annotation = inside[0] if len(inside) == 1 else annotation
        if len(inside) > 1 and all(option in BACKBONES.values() for option in inside):
            # the location of a backbone setting names the union's tag first: ("model", "hstu", "dim")
            annotation = BACKBONES.get(str(parts.pop(0))) if parts else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model
