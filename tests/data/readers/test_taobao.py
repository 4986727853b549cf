"""Tests for the Taobao UserBehavior reader."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from intentrec.data.dataset import Dataset
from intentrec.data.readers import read
from intentrec.data.readers.taobao import looks_like_taobao, read_taobao
from intentrec.errors import DataError


def test_userbehavior_sample(shared: Path) -> None:
    path = shared / "taobao-userbehavior-sample" / "UserBehavior_head.csv"
    raw = read(path)
    log = raw.interactions.collect()
    assert (raw.format, raw.timestamp_kind) == ("taobao", "unix_seconds")
    assert log.row(0) == (1, 2268318, 1511544070, 0, "pv", None, str(path), 1)
    assert (log.height, log["user"].n_unique(), log["item"].n_unique()) == (4_321, 43, 3_276)
    assert dict(log.group_by("event").len().iter_rows()) == {"pv": 3_926, "cart": 190, "fav": 128, "buy": 77}
    items = raw.items
    assert items is not None and items.height == 3_276
    assert items.filter(pl.col("item") == 2268318).row(0) == (2268318, None, ["2520377"])
    assert items["categories"].explode().n_unique() == 567
    dataset = Dataset.from_raw(raw)
    assert dataset.card.n_categories == 567 and dataset.n_items == 3_276


def test_tiny_compressed_log_keeps_every_category_of_an_item(write) -> None:
    raw = read_taobao(write("UserBehavior.csv.gz", "1,10,5,pv,100\n\n1,10,6,buy,101\n2,11,5,cart,102\n"))
    assert raw.interactions.collect().select("item", "event", "line").rows() == [
        (10, "pv", 1),
        (10, "buy", 3),
        (11, "cart", 4),
    ]
    assert raw.items is not None and raw.items.sort("item").rows() == [
        (10, None, ["5", "6"]),
        (11, None, ["5"]),
    ]


def test_looks_like_taobao() -> None:
    assert looks_like_taobao("1,2268318,2520377,pv,1511544070")
    assert not looks_like_taobao("1,2268318,2520377,click,1511544070")
    assert not looks_like_taobao("user,item,category,behavior,timestamp")
    assert not looks_like_taobao("1,2,3,pv")


def test_errors_name_file_and_line(write) -> None:
    with pytest.raises(
        DataError, match=r"T\.csv:2: column 'behavior': 'like' is not a behavior \(pv, fav, cart, buy\)"
    ):
        read(write("T.csv", "1,10,5,pv,100\n1,10,5,like,100\n"), format="taobao")
    with pytest.raises(
        DataError, match=r"F\.csv:3: expected 5 ','-separated fields \(user, item, category, behavior"
    ):
        read(write("F.csv", "1,10,5,pv,100\n\n1,10,pv,100\n"), format="taobao")
    with pytest.raises(
        DataError, match=r"S\.csv:1: column 'timestamp': '2017-11-25' is not integer unix seconds"
    ):
        read(write("S.csv", "1,10,5,pv,2017-11-25\n"), format="taobao")
