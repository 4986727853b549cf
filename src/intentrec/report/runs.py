"""What the report reads from a run folder: its name, backbone, priors, metrics and training history.

Only the files are read (config.json, metrics.json, history.jsonl), never the weights or the data, so a
report of many large runs is quick. A run that has not finished yet (no metrics.json) is still reported:
its metrics show as missing and its training curves as far as they go.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from intentrec.errors import IntentRecError
from intentrec.run import RunFiles
from intentrec.storage import read_text


class ReportError(IntentRecError):
    """A folder given to ``intentrec report`` that is not a readable run."""


@dataclass(frozen=True)
class RunSummary:
    """One run as the report shows it.

    Attributes
    ----------
    name:
        The run's folder name (its path as given, when two runs share a folder name).
    backbone, priors:
        ``model.name`` and ``heads.priors`` of its config, the priors as text (``"none"`` without heads).
    metrics:
        The content of metrics.json (``valid``, ``test``, ``best_epoch``, ``timing``, ...); empty when the
        run has not finished.
    history:
        The records of history.jsonl, one per epoch (``epoch``, ``loss``, ``valid_ndcg@10``, ...).
    """

    name: str
    backbone: str
    priors: str
    metrics: dict[str, Any]
    history: list[dict[str, Any]]

    def test(self, key: str) -> float | None:
        """The test metric ``key`` (e.g. ``"ndcg@10"``), or None when the run does not have it."""
        test = self.metrics.get("test")
        return as_float(test.get(key)) if isinstance(test, dict) else None

    def curve(self, key: str) -> tuple[list[int], list[float]]:
        """Epochs and values of ``key`` in the history (e.g. ``"loss"``), skipping epochs without it."""
        points = [(record.get("epoch"), as_float(record.get(key))) for record in self.history]
        kept = [(epoch, value) for epoch, value in points if isinstance(epoch, int) and value is not None]
        return [epoch for epoch, _ in kept], [value for _, value in kept]


def read_runs(folders: Sequence[str | Path]) -> list[RunSummary]:
    """Read every run folder, in the order given; a clear :class:`ReportError` for one that is not a run."""
    if not folders:
        raise ReportError("give at least one run folder (written by `intentrec fit --out`).")
    paths = [Path(folder) for folder in folders]
    resolved = [path.resolve() for path in paths]  # one folder by two names (a link, an absolute path)
    if len(set(resolved)) < len(resolved):
        twice = next(path for path, real in zip(paths, resolved, strict=True) if resolved.count(real) > 1)
        raise ReportError(f"{twice}: the same run folder is given twice.")
    names = [path.name for path in resolved]
    if len(set(names)) < len(names):
        # folder names are the short labels on the plots; when two clash, the paths as given tell them apart
        names = [str(path) for path in paths]
    return [read_run(path, name) for path, name in zip(paths, names, strict=True)]


def read_run(folder: str | Path, name: str | None = None) -> RunSummary:
    """Read the run in ``folder``, labelled ``name`` (default: the folder's name)."""
    files = RunFiles(folder)
    if not files.root.is_dir():
        found = "a file, not a run folder" if files.root.exists() else "no such run folder"
        raise ReportError(f"{files.root}: {found}.")
    if not files.config.is_file():
        raise ReportError(
            f"{files.root}: not an IntentRec run (no config.json); give a folder from `fit --out`."
        )
    config = _read_json(files.config)
    model, heads = config.get("model", {}), config.get("heads", {})
    for section, value in (("model", model), ("heads", heads)):
        if not isinstance(value, dict):
            raise ReportError(f"{files.config}: '{section}' should hold its settings, found {value!r}.")
    return RunSummary(
        name=name or files.root.resolve().name,
        backbone=str(
            model.get("name", "sasrec")
        ),  # a config without a name is SASRec's, as RunConfig reads it
        priors=_priors(heads),
        metrics=_read_json(files.metrics) if files.metrics.is_file() else {},
        history=_read_history(files.history) if files.history.is_file() else [],
    )


def _priors(heads: dict[str, Any]) -> str:
    # runs saved before several priors existed say "prior": "none" | "taxonomy" (see HeadsConfig)
    legacy = heads.get("prior", "none")
    priors = [str(prior) for prior in heads.get("priors", [] if legacy == "none" else [legacy])]
    if len(priors) > 1:
        return f"{' + '.join(priors)} ({heads.get('composition', 'hierarchical')})"
    return priors[0] if priors else "none"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(read_text(path, error=ReportError))
    except json.JSONDecodeError as error:
        raise ReportError(f"{path}:{error.lineno}: not valid JSON: {error.msg}.") from None
    if not isinstance(value, dict):
        raise ReportError(f"{path}: expected a JSON object, found {type(value).__name__}.")
    return value


def _read_history(path: Path) -> list[dict[str, Any]]:
    records = []
    for number, line in enumerate(read_text(path, error=ReportError).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise ReportError(f"{path}:{number}: not valid JSON: {error.msg}.") from None
        if not isinstance(record, dict):
            raise ReportError(f"{path}:{number}: expected a JSON object, found {type(record).__name__}.")
        records.append(record)
    return records


def as_float(value: Any) -> float | None:
    """``value`` as a float when it is a number in a JSON file, else None (a bool is no metric)."""
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
