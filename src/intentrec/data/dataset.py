"""The one canonical Dataset: encoded interactions, items, users and their raw-ID vocabularies.

Built once from a :class:`~intentrec.data.raw.RawLog` (validated at this edge, then trusted downstream),
stored as Parquet tables plus a small JSON card.

Ordering policy, relied on by splits and documented for users:
    interactions are sorted by user, then timestamp; rows with equal timestamps keep the order in which they
    were read (file order, files in reading order). With ``duplicates="drop_exact"`` (the default) rows
    equal in user, item, timestamp and event are collapsed to the first one read.

Encoded columns of ``Dataset.interactions``:
    ``user_idx`` Int32 in ``[0, n_users)``, ``item_idx`` Int32 in ``[0, n_items)``, ``timestamp`` Int64,
    ``event`` String, ``value`` Float32 (nullable).
Indices follow the sorted order of the raw IDs, so the same log always gets the same encoding.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
from pydantic import ValidationError

from intentrec.data.filters import FilterConfig, apply_filters
from intentrec.data.raw import RawLog, TimestampKind
from intentrec.errors import DataError
from intentrec.settings import Settings
from intentrec.storage import atomic_directory, read_text, write_json

CARD_FILE = "card.json"
log = logging.getLogger("intentrec")

TABLES = ("interactions", "users", "items")


class DatasetCard(Settings):
    """What a Dataset holds and where it came from; stored as ``card.json``."""

    name: str
    source: str
    format: str
    timestamp_kind: TimestampKind
    n_users: int
    n_items: int
    n_interactions: int
    events: dict[str, int]
    time_range: tuple[int, int]
    has_values: bool
    n_categories: int
    filters: FilterConfig
    fingerprint: str
    #: The log's times were divided by this to make seconds (1000: it counted milliseconds); a history
    #: brought at serving time, in the log's own unit, is divided the same way.
    time_divisor: int = 1


@dataclass(frozen=True)
class Dataset:
    """Encoded interactions plus the tables that map indices back to the user's own IDs.

    Attributes
    ----------
    interactions:
        ``user_idx, item_idx, timestamp, event, value``, sorted as described in the module docstring.
    users:
        ``user_idx, user`` (raw ID).
    items:
        ``item_idx, item`` (raw ID), ``title``, ``categories`` (list of strings), then any other attributes.
    card:
        Summary and provenance.
    """

    interactions: pl.DataFrame
    users: pl.DataFrame
    items: pl.DataFrame
    card: DatasetCard

    @property
    def n_users(self) -> int:
        return self.users.height

    @property
    def n_items(self) -> int:
        return self.items.height

    def item_categories(self) -> pl.DataFrame:
        """``item_idx``, ``categories``: one row per category of each item (none for an item without)."""
        # an item without categories explodes to a null row in polars 1.x (to none in 2.x): dropped
        return self.items.select("item_idx", "categories").explode("categories").drop_nulls("categories")

    @staticmethod
    def require(value: object) -> Dataset:
        """``value`` when it is a Dataset; a TypeError saying how to make one otherwise."""
        if not isinstance(value, Dataset):
            raise TypeError(
                f"expected a Dataset, not {type(value).__name__}: to train on a file or folder, set "
                "data.path in the config (fit() then reads it), or build one: Dataset.from_raw(read(path))."
            )
        return value

    @classmethod
    def from_raw(cls, raw: RawLog, filters: FilterConfig | None = None, name: str | None = None) -> Dataset:
        """Validate, filter and encode a reader's output.

        Raises :class:`~intentrec.errors.DataError` naming the file and line of the first bad row, or the
        filter that left the log empty.
        """
        filters = filters or FilterConfig()
        # One streaming pass collects only what a Dataset keeps, with text as categoricals: the encoded
        # log is far smaller than the text it was read from. File and line serve messages, then go.
        with_fractions = "microsecond" in raw.interactions.collect_schema()
        interactions = raw.interactions.select(
            "user",
            "item",
            "timestamp",
            pl.col("microsecond").fill_null(0)
            if with_fractions
            else pl.lit(0, pl.Int32).alias("microsecond"),
            pl.col("event").cast(pl.Categorical),
            "value",
            pl.col("file").cast(pl.Categorical),
            "line",
        ).collect(engine="streaming")
        if interactions.height == 0:
            raise DataError(f"{raw.source}: the log has no interactions.")
        _check_no_nulls(interactions, ("user", "item", "timestamp", "event"))
        divisor = _time_divisor(interactions, raw) if raw.timestamp_kind == "unix_seconds" else 1
        interactions = interactions.drop("file", "line")
        # Parts of a second (float seconds, ISO fractions) join the time until after the duplicate rule, as
        # a finer unit of the log would (a log counting milliseconds already has them in its times).
        finer = 10**6 if divisor == 1 and (interactions["microsecond"] != 0).any() else 1
        if finer > 1:
            interactions = interactions.with_columns(pl.col("timestamp") * finer + pl.col("microsecond"))
        interactions = interactions.drop("microsecond")

        # stable: equal timestamps keep their reading order
        interactions = interactions.sort("user", "timestamp", maintain_order=True)
        # in the log's own unit, so repeats a few milliseconds apart are no duplicates
        interactions = apply_filters(interactions, filters, raw.source)
        # after the sort, so events a few milliseconds apart keep their order within a second
        interactions = interactions.with_columns(pl.col("timestamp") // (divisor * finer))
        users = _vocabulary(interactions["user"], "user")
        items = _vocabulary(interactions["item"], "item")
        # a dense rank of the raw IDs is the index in the sorted vocabulary, with no join over the log
        encoded = interactions.select(
            (pl.col("user").rank("dense") - 1).cast(pl.Int32).alias("user_idx"),
            (pl.col("item").rank("dense") - 1).cast(pl.Int32).alias("item_idx"),
            "timestamp",
            "event",
            pl.col("value").cast(pl.Float32),
        )
        del interactions
        encoded = encoded.with_columns(pl.col("event").cast(pl.String))
        items = _attach_item_metadata(items, raw.items, raw.source)
        card = DatasetCard(
            name=name or Path(raw.source).stem or raw.source,
            source=raw.source,
            format=raw.format,
            timestamp_kind=raw.timestamp_kind,
            n_users=users.height,
            n_items=items.height,
            n_interactions=encoded.height,
            events=dict(encoded.group_by("event").len().sort("event").iter_rows()),
            time_range=(int(encoded["timestamp"].min()), int(encoded["timestamp"].max())),
            has_values=encoded["value"].null_count() < encoded.height,
            n_categories=items["categories"].explode().drop_nulls().n_unique(),
            filters=filters,
            fingerprint=_fingerprint(encoded),
            time_divisor=divisor,
        )
        return cls(interactions=encoded, users=users, items=items, card=card)

    def save(self, directory: str | Path) -> Path:
        """Write the tables as Parquet and the card as JSON into ``directory``, atomically as a whole."""
        directory = Path(directory)
        with atomic_directory(directory) as tmp:
            for table in TABLES:
                getattr(self, table).write_parquet(tmp / f"{table}.parquet")
            write_json(tmp / CARD_FILE, self.card.model_dump(mode="json"))
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> Dataset:
        """Read a Dataset written by :meth:`save`; a DataError if its tables no longer match its card (a
        folder edited after it was saved would train or rank on other data than the run's)."""
        card = cls.load_card(directory)
        tables = {table: _read_table(Path(directory) / f"{table}.parquet") for table in TABLES}
        interactions, users, items = tables["interactions"], tables["users"], tables["items"]
        changed = (
            users.height != card.n_users
            or items.height != card.n_items
            or _fingerprint(interactions) != card.fingerprint
            or not users["user_idx"].equals(pl.Series(range(card.n_users)), check_names=False)
            or not items["item_idx"].equals(pl.Series(range(card.n_items)), check_names=False)
        )
        if changed:
            raise DataError(
                f"{directory}: the tables no longer match {CARD_FILE} (edited after they were saved); "
                "read the log again with `intentrec fit` (or `intentrec data`) instead of editing them."
            )
        return cls(card=card, **tables)

    @staticmethod
    def load_card(directory: str | Path) -> DatasetCard:
        """The card of a Dataset written by :meth:`save`, without reading its tables."""
        card_path = Path(directory) / CARD_FILE
        if not card_path.is_file():
            raise DataError(f"{directory}: not a saved IntentRec dataset (no {CARD_FILE}).")
        try:
            return DatasetCard.model_validate_json(read_text(card_path, error=DataError))
        except ValidationError as error:
            first = error.errors()[0]
            field = ".".join(map(str, first["loc"]))
            problem = f"{field}: {first['msg']}" if field else first["msg"]  # Settings' own name the field
            raise DataError(f"{card_path}: not a dataset card written by IntentRec ({problem}).") from None

    @staticmethod
    def load_item_ids(directory: str | Path) -> pl.Series:
        """The raw item IDs, in index order, of a Dataset written by :meth:`save`; nothing else is read."""
        return _read_table(Path(directory) / "items.parquet", columns=["item"])["item"]

    def item_ids(self, item_idx: Any) -> pl.Series:
        """Raw item IDs for an array of item indices."""
        return self.items["item"].gather(item_idx)

    def user_ids(self, user_idx: Any) -> pl.Series:
        """Raw user IDs for an array of user indices."""
        return self.users["user"].gather(user_idx)

    def summary(self) -> dict[str, Any]:
        """Statistics a person wants before training: sizes, density, sequence lengths, events, time span."""
        lengths = self.interactions.group_by("user_idx").len()["len"]
        item_counts = self.interactions.group_by("item_idx").len()["len"]
        card = self.card
        return {
            "name": card.name,
            "source": card.source,
            "format": card.format,
            "users": card.n_users,
            "items": card.n_items,
            "interactions": card.n_interactions,
            "density": card.n_interactions / max(1, card.n_users * card.n_items),
            "sequence_length": {
                "min": int(lengths.min()),
                "median": float(lengths.median()),
                "mean": float(lengths.mean()),
                "max": int(lengths.max()),
            },
            "interactions_per_item": {
                "min": int(item_counts.min()),
                "median": float(item_counts.median()),
                "max": int(item_counts.max()),
            },
            "events": card.events,
            "timestamps": card.timestamp_kind,
            "time_range": list(card.time_range),
            "has_values": card.has_values,
            "categories": card.n_categories,
            "items_with_categories": int((self.items["categories"].list.len() > 0).sum()),
        }


def _check_no_nulls(interactions: pl.DataFrame, columns: tuple[str, ...]) -> None:
    for column in columns:
        nulls = interactions.filter(pl.col(column).is_null())
        if nulls.height:
            first = nulls.row(0, named=True)
            raise DataError(
                f"{first['file']}:{first['line']}: missing value in column '{column}' "
                f"({nulls.height} row(s) in all); every interaction needs a user, an item, a time and, "
                "where the log has event types, its type."
            )


#: What a log's Unix times may count, by what divides them into seconds (finest first).
TIME_UNITS = {10**9: "nanoseconds", 10**6: "microseconds", 10**3: "milliseconds", 1: "seconds"}
#: 10^11 seconds is in the year 5138: a time that late (in seconds) was given in a finer unit.
LATEST_SECONDS = 10**11


def _time_divisor(interactions: pl.DataFrame, raw: RawLog) -> int:
    """1, or 10^3, 10^6, 10^9 when the log's Unix times count milliseconds, microseconds, nanoseconds.

    A time of 10^11 seconds is in the year 5138, and 10^11 milliseconds in 1973: when even the earliest
    time of the log is that large, the log counts in a finer unit (1000x again for each further unit).
    A time of 10^11 of the log's own unit (after the year 5000) means rows in two units: a DataError
    naming the first such row, as no order of the events can be trusted then.
    """
    earliest = interactions["timestamp"].min()
    assert isinstance(earliest, int)
    divisor = next((divisor for divisor in TIME_UNITS if earliest >= 10**8 * divisor), 1)
    if divisor > 1:
        log.warning(
            "%s: the times are in %s (earliest %d); read as seconds",
            raw.source,
            TIME_UNITS[divisor],
            earliest,
        )
    beyond = interactions.filter(pl.col("timestamp") // divisor >= LATEST_SECONDS)  # not * divisor: Int64
    if beyond.height:
        row = beyond.row(0, named=True)
        raise DataError(
            f"{row['file']}:{row['line']}: time {row['timestamp']} is after the year 5000 if it counts "
            f"{TIME_UNITS[divisor]}, as the log's earliest time ({earliest}) does "
            f"({beyond.height} such row(s)); the log mixes units: give every time in one."
        )
    return divisor


def _vocabulary(raw_ids: pl.Series, name: str) -> pl.DataFrame:
    unique = raw_ids.unique().sort()
    return pl.DataFrame({f"{name}_idx": pl.int_range(unique.len(), dtype=pl.Int32, eager=True), name: unique})


def _attach_item_metadata(
    vocabulary: pl.DataFrame, metadata: pl.DataFrame | None, source: str
) -> pl.DataFrame:
    """Items table in index order; items the metadata does not know get no title and no categories, and
    an item the metadata names twice gets its first row's."""
    if metadata is None:
        metadata = pl.DataFrame(
            schema={"item": vocabulary["item"].dtype, "title": pl.String, "categories": pl.List(pl.String)}
        )
    given = metadata["item"].n_unique()
    if metadata["item"].dtype != vocabulary["item"].dtype:
        # e.g. a log with integer IDs and an items file read as strings: "007" and "7" both name item 7
        metadata = metadata.with_columns(pl.col("item").cast(vocabulary["item"].dtype, strict=False))
        metadata = metadata.filter(pl.col("item").is_not_null())  # "X9" names no integer item of the log
    unique = metadata.unique(subset="item", keep="first", maintain_order=True)
    if unique.height < metadata.height:
        log.warning(
            "%s: %d row(s) of the item metadata name an item an earlier row names (as the log's IDs read "
            "them); each item keeps its first row",
            source,
            metadata.height - unique.height,
        )
    described = int(vocabulary["item"].is_in(unique["item"].implode()).sum())
    if given and described < vocabulary.height / 2:
        log.warning(
            "%s: only %d of the log's %d items are in the item metadata (which names %d items): are the IDs "
            "written alike in both?",
            source,
            described,
            vocabulary.height,
            given,
        )
    items = vocabulary.join(unique, on="item", how="left", maintain_order="left")
    return items.with_columns(pl.col("categories").fill_null(pl.lit([], dtype=pl.List(pl.String))))


def _fingerprint(interactions: pl.DataFrame) -> str:
    """A content hash of the encoded log, so a run can check it is evaluated on the same data."""
    digest = hashlib.sha256()
    for column in ("user_idx", "item_idx", "timestamp"):
        digest.update(interactions[column].to_numpy().tobytes())
    return digest.hexdigest()[:16]


def _read_table(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A table of a saved Dataset; a DataError naming the file when it is missing or damaged."""
    try:
        return pl.read_parquet(path, columns=columns)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise DataError(f"{path}: unreadable table of a saved dataset ({error}).") from None
