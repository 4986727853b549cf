"""Tests for intentrec.data.dataset: ordering and duplicate policy, encoding, card, errors, save/load."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from intentrec.data.dataset import TABLES, Dataset
from intentrec.data.filters import FilterConfig
from intentrec.data.raw import RawLog
from intentrec.errors import DataError

# --- ordering and duplicates -----------------------------------------------------------------------------


def test_equal_timestamps_keep_file_order(make_dataset) -> None:
    ds = make_dataset([(1, 30, 5), (1, 10, 5), (1, 20, 1), (1, 40, 5)])
    # item_idx follows sorted raw IDs: 10 -> 0, 20 -> 1, 30 -> 2, 40 -> 3
    assert ds.interactions["item_idx"].to_list() == [1, 2, 0, 3]


def test_equal_timestamps_keep_the_order_files_were_read(make_raw_log) -> None:
    first = make_raw_log([(1, 20, 5), (2, 20, 5)], file="a.csv")
    second = make_raw_log([(1, 10, 5)], file="b.csv")
    both = RawLog(pl.concat([first.interactions, second.interactions]), None, "logs/", "test")
    assert Dataset.from_raw(both).interactions["item_idx"].to_list() == [1, 0, 1]


def test_drop_exact_keeps_the_first_of_rows_equal_in_user_item_time_and_event(make_dataset) -> None:
    ds = make_dataset(
        [
            (1, 10, 5, "rating", 4.0),
            (1, 10, 5, "rating", 2.0),  # exact duplicate of the row above, but for the value: dropped
            (1, 10, 5, "tag", None),  # another event: kept
            (2, 10, 5, "rating", 1.0),  # another user: kept
        ]
    )
    assert ds.interactions.select("user_idx", "event", "value").rows() == [
        (0, "rating", 4.0),
        (0, "tag", None),
        (1, "rating", 1.0),
    ]


def test_keep_keeps_exact_duplicates(make_dataset) -> None:
    rows = [(1, 10, 5, "rating", 4.0), (1, 10, 5, "rating", 2.0), (1, 10, 5, "rating", 4.0)]
    ds = make_dataset(rows, FilterConfig(duplicates="keep"))
    assert ds.interactions["value"].to_list() == [4.0, 2.0, 4.0]


def test_repeats_of_an_item_at_different_times_are_kept(make_dataset) -> None:
    ds = make_dataset([(1, 10, 3), (1, 10, 1), (1, 11, 2), (1, 10, 2)])
    assert ds.interactions.select("item_idx", "timestamp").rows() == [(0, 1), (1, 2), (0, 2), (0, 3)]
    # in a millisecond log, within one second: a repeat, and the same millisecond twice, a duplicate
    ms = make_dataset([(1, 10, 1_600_000_000_000), (1, 10, 1_600_000_000_400), (1, 10, 1_600_000_000_400)])
    assert ms.interactions["timestamp"].to_list() == [1_600_000_000, 1_600_000_000]


@st.composite
def logs(draw: st.DrawFn) -> list[tuple]:
    """Random rows ``(user, item, timestamp, event, value)`` with many exact and near duplicates."""
    as_text = draw(st.booleans())
    row = st.tuples(
        st.integers(0, 12), st.integers(0, 12), st.integers(0, 4), st.sampled_from(["click", "buy"])
    ).map(lambda r: (str(r[0]), str(r[1]), *r[2:]) if as_text else r)
    rows = draw(st.lists(row, min_size=1, max_size=40))
    values = draw(st.lists(st.sampled_from([None, 1.0, 2.5]), min_size=len(rows), max_size=len(rows)))
    return [(*r, value) for r, value in zip(rows, values, strict=True)]


def reference_interactions(rows: list[tuple], duplicates: str) -> list[tuple]:
    """The documented policy one row at a time: dedupe in reading order, stable sort, sorted-ID encoding."""
    if duplicates == "drop_exact":
        seen, kept = set(), []
        for row in rows:
            if row[:4] not in seen:
                seen.add(row[:4])
                kept.append(row)
        rows = kept
    users = {user: index for index, user in enumerate(sorted({row[0] for row in rows}))}
    items = {item: index for index, item in enumerate(sorted({row[1] for row in rows}))}
    ordered = sorted(rows, key=lambda row: (row[0], row[2]))  # Python's sort is stable: ties keep file order
    return [(users[u], items[i], time, event, value) for u, i, time, event, value in ordered]


@settings(max_examples=60, deadline=None)
@given(rows=logs(), duplicates=st.sampled_from(["drop_exact", "keep"]))
def test_interactions_follow_the_documented_policy(make_dataset, rows, duplicates) -> None:
    ds = make_dataset(rows, FilterConfig(duplicates=duplicates))
    assert ds.interactions.rows() == reference_interactions(rows, duplicates)


# --- encoding --------------------------------------------------------------------------------------------


def test_integer_ids_are_encoded_in_numeric_order(make_dataset) -> None:
    ds = make_dataset([(33, 100, 1), (2, 7, 1), (10, 20, 1)])
    assert ds.users.rows() == [(0, 2), (1, 10), (2, 33)]
    assert ds.items["item"].to_list() == [7, 20, 100]
    assert ds.users["user"].dtype == ds.items["item"].dtype == pl.Int64


def test_string_ids_are_encoded_in_sorted_order(make_dataset) -> None:
    ds = make_dataset([("b", "i10", 1), ("a", "i9", 1), ("c", "i2", 1)])
    assert ds.users.rows() == [(0, "a"), (1, "b"), (2, "c")]
    assert ds.items["item"].to_list() == ["i10", "i2", "i9"]
    assert ds.interactions.select("user_idx", "item_idx").rows() == [(0, 2), (1, 0), (2, 1)]


def test_encoding_does_not_depend_on_reading_order(make_dataset) -> None:
    rows = [(5, 50, 3), (1, 20, 2), (5, 10, 1), (3, 20, 4), (1, 50, 9)]
    forward, backward = make_dataset(rows), make_dataset(rows[::-1])
    assert_frame_equal(forward.interactions, backward.interactions)
    assert_frame_equal(forward.users, backward.users)
    assert_frame_equal(forward.items, backward.items)
    assert forward.card.fingerprint == backward.card.fingerprint


def test_item_and_user_ids_map_indices_back(make_dataset) -> None:
    ds = make_dataset([("u2", 30, 1), ("u1", 10, 1), ("u1", 20, 2)])
    assert ds.item_ids([2, 0]).to_list() == [30, 10]
    assert ds.user_ids([1]).to_list() == ["u2"]


# --- card, summary, item metadata ------------------------------------------------------------------------

METADATA = pl.DataFrame(
    {
        # text IDs for an integer log, a repeated item (the first row wins, also when written "010"), an
        # item the log never uses, an ID that is no integer
        "item": ["10", "11", "10", "99", "010", "X9"],
        "title": ["Alpha", "Beta", "Repeated", "Unused", "Padded", "Text"],
        "categories": [["x", "y"], ["y"], ["w"], ["z"], ["v"], ["u"]],
    }
)

SMALL_LOG = [
    (1, 10, 100, "rating", 4.0),
    (1, 11, 200, "rating", 5.0),
    (2, 10, 150, "tag", None),
    (2, 12, 300, "rating", 3.0),
    (3, 10, 50, "rating", 2.0),
]


def test_items_get_metadata_and_unknown_items_get_no_categories(make_dataset, caplog) -> None:
    ds = make_dataset(SMALL_LOG, items=METADATA)
    assert "2 row(s) of the item metadata name an item an earlier row names" in caplog.text
    assert ds.items.select("item_idx", "item", "title", "categories").rows() == [
        (0, 10, "Alpha", ["x", "y"]),
        (1, 11, "Beta", ["y"]),
        (2, 12, None, []),
    ]
    # one row per (item, category); item 12 has none
    assert ds.item_categories().rows() == [(0, "x"), (0, "y"), (1, "y")]


def test_metadata_that_names_few_of_the_logs_items_is_warned_about(make_dataset, caplog) -> None:
    other_ids = pl.DataFrame({"item": ["i10", "i11"], "title": ["A", "B"], "categories": [["x"], ["y"]]})
    ds = make_dataset(SMALL_LOG, items=other_ids)
    assert "only 0 of the log's 3 items are in the item metadata (which names 2 items)" in caplog.text
    assert ds.items["title"].null_count() == 3
    caplog.clear()
    make_dataset(SMALL_LOG, items=METADATA)  # 2 of 3 described
    assert "are the IDs written alike" not in caplog.text


def test_card_describes_the_dataset(make_dataset) -> None:
    card = make_dataset(SMALL_LOG, items=METADATA, source="data/ratings.csv").card
    assert (card.name, card.source, card.format, card.timestamp_kind) == (
        "ratings",
        "data/ratings.csv",
        "test",
        "unix_seconds",
    )
    assert (card.n_users, card.n_items, card.n_interactions) == (3, 3, 5)
    assert card.events == {"rating": 4, "tag": 1}
    assert card.time_range == (50, 300)
    assert card.has_values
    assert card.n_categories == 2
    assert card.filters == FilterConfig()


def test_summary(make_dataset) -> None:
    summary = make_dataset(SMALL_LOG, items=METADATA).summary()
    assert summary["density"] == pytest.approx(5 / 9)
    assert summary["sequence_length"] == {"min": 1, "median": 2.0, "mean": pytest.approx(5 / 3), "max": 2}
    assert summary["interactions_per_item"] == {"min": 1, "median": 1.0, "max": 3}
    assert summary["items_with_categories"] == 2
    assert (summary["users"], summary["items"], summary["interactions"]) == (3, 3, 5)


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("column", ["user", "item", "timestamp"])
def test_missing_value_names_file_line_and_column(make_dataset, column) -> None:
    rows = [[1, 10, 1], [1, 11, 2], [2, 10, 3], [2, 11, 4]]
    position = ["user", "item", "timestamp"].index(column)
    rows[2][position] = None  # line 4: the header is line 1
    rows[3][position] = None
    with pytest.raises(DataError, match=rf"^ratings\.csv:4: missing value in column '{column}' \(2 row"):
        make_dataset(rows, source="ratings.csv")


def test_empty_log_is_refused(make_dataset) -> None:
    with pytest.raises(DataError, match=r"^empty\.csv: the log has no interactions\.$"):
        make_dataset([], source="empty.csv")


# --- save and load ---------------------------------------------------------------------------------------


def test_save_load_round_trip(make_dataset, tmp_path: Path) -> None:
    original = make_dataset(SMALL_LOG, items=METADATA, filters=FilterConfig(min_rating=1.0))
    directory = original.save(tmp_path / "ds")
    loaded = Dataset.load(directory)
    for table in ("interactions", "users", "items"):
        assert_frame_equal(getattr(loaded, table), getattr(original, table))
    assert loaded.card == original.card == Dataset.load_card(directory)
    assert Dataset.load_item_ids(directory).equals(original.items["item"])


def test_save_replaces_an_existing_dataset_as_a_whole(make_dataset, tmp_path: Path) -> None:
    directory = tmp_path / "ds"
    make_dataset(SMALL_LOG).save(directory)
    (directory / "stale.txt").write_text("from an older version")
    newer = make_dataset([(7, 70, 1), (7, 71, 2)])
    newer.save(directory)

    assert_frame_equal(Dataset.load(directory).interactions, newer.interactions)
    assert sorted(path.name for path in directory.iterdir()) == [
        "card.json",
        "interactions.parquet",
        "items.parquet",
        "users.parquet",
    ]
    assert [path.name for path in tmp_path.iterdir()] == ["ds"], "no temporary directory is left behind"


def one_second_later(interactions: pl.DataFrame) -> pl.DataFrame:
    return interactions.with_columns(pl.col("timestamp") + 1)


@pytest.mark.parametrize(
    "edit",
    [
        lambda tables: {**tables, "interactions": tables["interactions"].head(-1)},
        lambda tables: {**tables, "interactions": one_second_later(tables["interactions"])},
        lambda tables: {**tables, "users": tables["users"].reverse()},
        lambda tables: {**tables, "items": tables["items"].head(-1)},
    ],
    ids=["a row removed", "times changed", "users reordered", "an item removed"],
)
def test_load_refuses_tables_edited_after_they_were_saved(make_dataset, tmp_path: Path, edit) -> None:
    directory = make_dataset(SMALL_LOG, items=METADATA).save(tmp_path / "ds")
    tables = {name: pl.read_parquet(directory / f"{name}.parquet") for name in TABLES}
    for name, table in edit(tables).items():
        table.write_parquet(directory / f"{name}.parquet")

    with pytest.raises(DataError, match=r"ds: the tables no longer match card\.json \(edited after"):
        Dataset.load(directory)


def test_load_accepts_edited_item_metadata(make_dataset, tmp_path: Path) -> None:
    directory = make_dataset(SMALL_LOG, items=METADATA).save(tmp_path / "ds")
    items = pl.read_parquet(directory / "items.parquet")
    items.with_columns(pl.col("title").str.to_uppercase()).write_parquet(directory / "items.parquet")

    assert Dataset.load(directory).items["title"].to_list() == items["title"].str.to_uppercase().to_list()


def test_load_of_a_folder_that_is_not_a_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"not a saved IntentRec dataset \(no card\.json\)"):
        Dataset.load(tmp_path)
