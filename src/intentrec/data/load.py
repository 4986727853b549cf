"""From a path or a public dataset name to a filtered, encoded Dataset, as a run's ``data`` config says."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from intentrec.data.dataset import Dataset
from intentrec.data.download import DATASETS, fetch
from intentrec.data.filters import FilterConfig
from intentrec.data.readers import ColumnMapping, read
from intentrec.errors import DataError, did_you_mean
from intentrec.settings import Settings

DEFAULT_DATASET = "ml-latest-small"


class DataConfig(Settings):
    """Where the interactions come from and which of them are kept."""

    path: str = Field(
        DEFAULT_DATASET,
        min_length=1,  # an empty path would read the working folder
        description="A file or folder, or the name of a public dataset (downloaded into the cache).",
    )
    format: str | None = Field(None, description="Reader to use; None recognises it from the path.")
    columns: ColumnMapping | None = Field(None, description="Column names of a generic CSV/Parquet table.")
    filters: FilterConfig = Field(default_factory=FilterConfig)


def load_dataset(config: DataConfig) -> Dataset:
    """Read, validate, filter and encode the data a config points to."""
    path = Path(config.path).expanduser()
    if not path.exists():
        if config.path not in DATASETS:
            raise DataError(
                f"{config.path}: no such file or folder, and not a known dataset name"
                f"{did_you_mean(config.path, DATASETS)}; known names: {', '.join(DATASETS)}."
            )
        path = fetch(config.path)
    raw = read(path, format=config.format, columns=config.columns)
    name = config.path if config.path in DATASETS else None
    return Dataset.from_raw(raw, config.filters, name=name)
