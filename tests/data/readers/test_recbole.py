"""Tests for the RecBole atomic-file reader."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from intentrec.data.dataset import Dataset
from intentrec.data.readers import read
from intentrec.data.readers.recbole import read_recbole
from intentrec.errors import DataError

HEADER = "user_id:token\titem_id:token\trating:float\ttimestamp:float\n"


def test_ml_100k_recbole_matches_the_raw_files(shared: Path) -> None:
    folder = shared / "ml-100k" / "recbole"
    raw = read(folder)
    log = raw.interactions.collect()
    assert (raw.format, raw.timestamp_kind) == ("recbole", "unix_seconds")
    assert log.height == 100_000
    assert log.row(0) == (196, 242, 881250949, 0, "rating", 3.0, str(folder / "ml-100k.inter.gz"), 2)
    # The .inter rows are u.data's rows in the same order (SOURCE.md), one line further down for the header.
    u_data = read(shared / "ml-100k" / "raw" / "u.data.gz").interactions.collect()
    assert log.select("user", "item", "timestamp", "value").equals(
        u_data.select("user", "item", "timestamp", "value")
    )
    assert (log["line"] - 1).equals(u_data["line"])

    items = raw.items
    assert items is not None and items.height == 1682
    assert items.row(0) == (1, "Toy Story", ["Animation", "Children's", "Comedy"])
    dataset = Dataset.from_raw(raw)
    assert (dataset.card.n_interactions, dataset.n_users, dataset.n_items, dataset.card.n_categories) == (
        100_000,
        943,
        1682,
        19,
    )


def test_tokens_stay_strings_unless_plain_integers(write, tmp_path: Path) -> None:
    write("shop/shop.inter.zst", "user_id:token\titem_id:token\ttimestamp:float\nu1\t007\t10.5\nu2\t7\t11\n")
    write(
        "shop/shop.item",
        "item_id:token\tname_title:token_seq\tcategories:token_seq\n007\tRed Hat\thats red\n",
    )
    raw = read(tmp_path / "shop")
    log = raw.interactions.collect()
    assert log.schema["user"] == pl.String and log.schema["item"] == pl.String
    assert log.select("user", "item", "timestamp", "event", "value").rows() == [
        ("u1", "007", 10, "interaction", None),
        ("u2", "7", 11, "interaction", None),
    ]
    assert raw.items is not None and raw.items.row(0) == ("007", "Red Hat", ["hats", "red"])


def test_without_timestamp_the_log_is_order_only(write) -> None:
    path = write("x.inter", "user_id:token\titem_id:token\n1\t5\n2\t6\n1\t7\n")
    raw = read(path)
    assert raw.timestamp_kind == "order"
    assert raw.interactions.collect().select("user", "item", "timestamp").rows() == [
        (1, 5, 0),
        (2, 6, 0),
        (1, 7, 1),
    ]
    assert raw.items is None


def test_folder_prefers_the_file_named_after_it(write, tmp_path: Path) -> None:
    write("ds/ds.inter", HEADER + "1\t2\t3\t4\n")
    write("ds/other.inter", HEADER + "9\t9\t9\t9\n")
    assert read_recbole(tmp_path / "ds").interactions.collect()["user"].to_list() == [1]


def test_errors_name_file_and_line(write, tmp_path: Path) -> None:
    write("two/a.inter", HEADER)
    write("two/b.inter", HEADER)
    with pytest.raises(
        DataError, match=r"two: several \.inter files \(a\.inter, b\.inter\); pass the one to read"
    ):
        read(tmp_path / "two", format="recbole")
    write("none/readme.md", "x")
    with pytest.raises(DataError, match=r"none: no RecBole \.inter file here"):
        read(tmp_path / "none", format="recbole")
    with pytest.raises(DataError, match=r"h\.inter:1: header field 'user_id' is not 'name:type'"):
        read(write("h.inter", "user_id\titem_id:token\n1\t2\n"))
    with pytest.raises(DataError, match=r"d\.inter:1: the field 'user_id' appears twice in the header"):
        read(write("d.inter", "user_id:token\titem_id:token\tuser_id:float\n1\t2\t3\n"))
    with pytest.raises(DataError, match=r"m\.inter: no column 'user_id'.*\(did you mean 'userid'\?\)"):
        read(write("m.inter", "userid:token\titem_id:token\n1\t2\n"))
    with pytest.raises(DataError, match=r"r\.inter:3: column 'rating': 'good' is not a number"):
        read(write("r.inter", HEADER + "1\t2\t3\t4\n1\t2\tgood\t4\n"))
    not_a_time = r"t\.inter:2: column 'timestamp': 'noon' is not a timestamp"
    with pytest.raises(DataError, match=not_a_time) as error:
        read(write("t.inter", HEADER + "1\t2\t3\tnoon\n"))
    assert "timestamp_format" not in str(error.value)  # a RecBole file has no such setting to give
    with pytest.raises(DataError, match=r"e\.inter: the file has a header \(line 1\) but no data rows"):
        read(write("e.inter", HEADER))
    write("i/i.inter", HEADER + "1\t2\t3\t4\n")
    write("i/i.item", "movie_title:token_seq\nx\n")
    with pytest.raises(DataError, match=r"i\.item: no column 'item_id'"):
        read(tmp_path / "i")
