"""Every recipe in recipes/ stays a valid config as the code moves."""

from __future__ import annotations

from pathlib import Path

import pytest

from intentrec.config import RunConfig

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.toml"))


def test_there_are_recipes() -> None:
    assert RECIPES


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_recipe_loads(recipe: Path) -> None:
    config = RunConfig.from_file(recipe)
    assert config.train.monitor == "ndcg@10"
