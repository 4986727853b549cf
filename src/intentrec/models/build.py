"""A model from a RunConfig: the backbone it names with fresh weights and its prior heads, or the trained
backbone of another run for heads fitted on top of it (``heads.backbone_from``)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

from intentrec.config import RunConfig
from intentrec.data.dataset import Dataset
from intentrec.data.raw import TimestampKind
from intentrec.errors import ConfigError, IntentRecError
from intentrec.models.backbone import Backbone
from intentrec.models.fuxi import FuXi, FuXiConfig
from intentrec.models.gru4rec import GRU4Rec, GRU4RecConfig
from intentrec.models.heads import PriorHeads
from intentrec.models.hstu import HSTU, HSTUConfig
from intentrec.models.model import SequentialModel
from intentrec.models.priors import Prior
from intentrec.models.sasrec import SASRec
from intentrec.run import RunFiles, load_weights

log = logging.getLogger("intentrec")


def build_model(
    config: RunConfig,
    n_items: int,
    timestamp_kind: TimestampKind = "unix_seconds",
    priors: Sequence[Prior] = (),
) -> SequentialModel:
    """The torch module a config describes, with fresh weights.

    ``timestamp_kind`` is the dataset's: an order-only log gives HSTU and FuXi-α no time gaps to learn from.
    ``priors`` (see :func:`~intentrec.models.heads.build_priors`) give the model one head per prior value.
    """
    torch.manual_seed(config.train.seed)
    use_time = timestamp_kind == "unix_seconds"
    backbone: Backbone
    if isinstance(config.model, HSTUConfig):
        backbone = HSTU(config.model, use_time=use_time)
    elif isinstance(config.model, FuXiConfig):
        backbone = FuXi(config.model, use_time=use_time)
    elif isinstance(config.model, GRU4RecConfig):
        backbone = GRU4Rec(config.model)
    else:
        backbone = SASRec(config.model)
    heads = PriorHeads(backbone.dim, n_items, list(priors), config.heads) if priors else None
    return SequentialModel(
        backbone, n_items, normalize=config.loss.normalize, heads=heads, temperature=config.loss.temperature
    )


def load_backbone(model: SequentialModel, config: RunConfig, dataset: Dataset) -> None:
    """Copy the backbone and item table of the run ``config.heads.backbone_from`` into ``model``.

    That run must have been trained on the same dataset, split, model settings and scores (``loss.normalize``
    and ``loss.temperature``, with which the backbone's own distribution joins the heads'): its backbone is
    then exactly what this run would train without heads, and its training never saw this split's
    validation or test targets. Anything else is a ConfigError naming what differs.
    """
    assert config.heads.backbone_from is not None
    try:
        source = RunFiles(config.heads.backbone_from).require()
    except IntentRecError as error:
        raise ConfigError(f"heads.backbone_from: {error}") from None
    theirs = RunConfig.from_file(source.config)
    differences = [
        f"{name}: {value!r} there, {ours!r} here"
        for section in ("model", "split", "loss.normalize", "loss.temperature")
        for name, value, ours in _differences(section, theirs, config)
    ]
    # the card's fingerprint stands for the interactions: a large log is not read a second time
    same_log = Dataset.load_card(source.dataset).fingerprint == dataset.card.fingerprint
    if not same_log or not Dataset.load_item_ids(source.dataset).equals(dataset.items["item"]):
        differences.append("the dataset (its interactions or item IDs)")
    if differences:
        raise ConfigError(
            f"heads.backbone_from {source.root}: that run differs from this one in "
            + "; ".join(differences)
            + ". Its backbone must be trained on the same data, split, model settings and scores."
        )
    weights = load_weights(source.best_weights)
    shared = {name: tensor for name, tensor in weights.items() if not name.startswith("heads.")}
    model.load_state_dict(shared, strict=False)
    log.info("prior heads fitted on the frozen backbone of %s", source.root)


def _differences(section: str, theirs: RunConfig, ours: RunConfig) -> list[tuple[str, Any, Any]]:
    """``(dotted name, their value, our value)`` of the settings under ``section`` that differ."""

    def at(config: RunConfig) -> Any:
        node: Any = config.to_json()
        for part in section.split("."):
            node = node[part]
        return node

    mine, other = at(ours), at(theirs)
    if not isinstance(mine, dict):
        return [] if mine == other else [(section, other, mine)]
    # another backbone differs in every setting; its name says it all
    keys = ["name"] if mine.get("name") != other.get("name") else sorted(set(mine) | set(other))
    return [
        (f"{section}.{key}", other.get(key), mine.get(key)) for key in keys if mine.get(key) != other.get(key)
    ]


def parameter_counts(model: SequentialModel) -> dict[str, int]:
    """Trainable parameters of the backbone, the item table and the prior heads (0 without)."""
    return {
        "backbone": sum(parameter.numel() for parameter in model.backbone.parameters()),
        "items": model.item_embedding.weight.numel(),
        "heads": model.heads.parameter_count() if model.heads is not None else 0,
    }
