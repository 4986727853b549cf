"""Tests for the SASRec/S3-Rec sequence-file reader."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from intentrec.data.dataset import Dataset
from intentrec.data.readers import read
from intentrec.data.readers.sequences import read_sequences
from intentrec.errors import DataError


def test_beauty_end_to_end(shared: Path) -> None:
    path = shared / "s3rec-seq" / "Beauty.txt.gz"
    raw = read(path)
    assert (raw.format, raw.timestamp_kind) == ("sequence", "order")
    log = raw.interactions.collect()
    assert log.row(0) == (1, 1, 0, 0, "interaction", None, str(path), 1)
    assert log.filter(pl.col("user") == 2)["timestamp"].to_list() == list(range(7))
    lengths = log.group_by("user").len()["len"]
    assert (lengths.min(), lengths.max()) == (5, 204)

    dataset = Dataset.from_raw(raw)
    assert (dataset.card.n_interactions, dataset.n_users, dataset.n_items) == (198_502, 22_363, 12_101)
    assert dataset.card.events == {"interaction": 198_502}
    assert dataset.card.n_categories == 637
    items = raw.items
    assert items is not None and items.height == 12_101
    assert items.filter(pl.col("item") == 4).row(0) == (4, None, ["1", "2", "3"])


def test_lastfm_counts_and_attributes(shared: Path) -> None:
    raw = read(shared / "s3rec-seq" / "LastFM.txt.gz")
    log = raw.interactions.collect()
    assert (log.height, log["user"].n_unique(), log["item"].n_unique()) == (52_551, 1_090, 3_646)
    items = raw.items
    assert items is not None and items["categories"].explode().n_unique() == 388
    # LastFM's attribute lists repeat tags; categories keep each once (31.5 per item with repeats)
    assert items["categories"].list.len().mean() == pytest.approx(12.45, abs=0.01)


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_tiny_file_with_attributes(write, tmp_path: Path, suffix: str) -> None:
    path = write("Toy.txt" + suffix, "1 10 11 10\n\n2\t12  13 \n3\n")
    write("Toy_item2attributes.json" + suffix, '{"10": [1, 2], "12": []}')
    raw = read_sequences(path)
    assert raw.interactions.collect().select("user", "item", "timestamp", "line").rows() == [
        (1, 10, 0, 1),
        (1, 11, 1, 1),
        (1, 10, 2, 1),
        (2, 12, 0, 3),
        (2, 13, 1, 3),
    ]
    assert raw.items is not None and raw.items.rows() == [(10, None, ["1", "2"]), (12, None, [])]


def test_without_attributes_there_are_no_items(write) -> None:
    assert read(write("Solo.txt", "1 2 3\n")).items is None


def test_a_user_on_several_lines_continues_counting(write) -> None:
    log = read(write("Twice.txt", "1 5 6\n2 7\n1 8\n")).interactions.collect()
    assert log.select("user", "item", "timestamp", "line").rows() == [
        (1, 5, 0, 1),
        (1, 6, 1, 1),
        (2, 7, 0, 2),
        (1, 8, 2, 3),
    ]


def test_malformed_lines_are_named(write) -> None:
    with pytest.raises(DataError, match=r"S\.txt:2: item ID: 'x7' is not an integer \(a line is 'user item1"):
        read(write("S.txt", "1 2 3\n2 x7 4\n"))
    with pytest.raises(DataError, match=r"U\.txt:3: user ID \(the first token\): 'u3' is not an integer"):
        read(write("U.txt", "1 2\n\nu3 4\n"), format="sequence")
    with pytest.raises(DataError, match=r"B\.txt\.gz:2: the bytes b'\\xff' are not valid UTF-8"):
        read(write("B.txt.gz", b"1 2\n2 \xff\n"), format="sequence")


def test_attribute_file_errors(write) -> None:
    path = write("A.txt", "1 2\n")
    write("A_item2attributes.json", '{"2": [1,\n 2')
    with pytest.raises(DataError, match=r"A_item2attributes\.json:2:3: not valid JSON"):
        read(path)
    write("A_item2attributes.json", "[1, 2]")
    with pytest.raises(DataError, match=r"A_item2attributes\.json: expected a JSON object"):
        read(path)
    write("A_item2attributes.json", '{"2": [1], "3": 5}')
    with pytest.raises(
        DataError, match=r"A_item2attributes\.json: item '3': every value must be a list of attribute IDs"
    ):
        read(path)
    write("A_item2attributes.json", '{"2": [[1]]}')
    with pytest.raises(
        DataError, match=r"A_item2attributes\.json: every attribute ID must be a number or text"
    ):
        read(path)
    write("A_item2attributes.json", '{"2": [1], "b": [2]}')
    with pytest.raises(DataError, match=r"A_item2attributes\.json: item key 'b' is not an integer item ID"):
        read(path)
    write("A_item2attributes.json", b'{"2": [1],\n "3": ["\xe9"]}')
    with pytest.raises(DataError, match=r"A_item2attributes\.json:2: the bytes b'\\xe9' are not valid UTF-8"):
        read(path)
