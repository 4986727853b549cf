"""Tests for the MovieLens reader: the three official layouts, on real files and tiny ones."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from intentrec.data.dataset import Dataset
from intentrec.data.raw import INTERACTION_COLUMNS, ITEM_COLUMNS
from intentrec.data.readers import read
from intentrec.data.readers.movielens import GENRES_100K, read_movielens
from intentrec.errors import DataError


def test_ml_100k_raw_folder(shared: Path) -> None:
    folder = shared / "ml-100k" / "raw"
    raw = read(folder)
    log = raw.interactions.collect()
    assert (raw.format, raw.timestamp_kind, raw.source) == ("movielens", "unix_seconds", str(folder))
    assert log.columns == list(INTERACTION_COLUMNS)
    assert log.height == 100_000
    assert log.row(0) == (196, 242, 881250949, 0, "rating", 3.0, str(folder / "u.data.gz"), 1)
    assert log["line"].to_list()[-1] == 100_000
    assert log["value"].min() == 1.0 and log["value"].max() == 5.0

    items = raw.items
    assert items is not None and items.columns == list(ITEM_COLUMNS) and items.height == 1682
    by_id = {row["item"]: row for row in items.filter(pl.col("item").is_in([1, 267, 543])).to_dicts()}
    assert by_id[1]["categories"] == ["Animation", "Children's", "Comedy"]
    assert by_id[267] == {"item": 267, "title": "unknown", "categories": ["unknown"]}
    assert by_id[543]["title"] == "Misérables, Les (1995)"  # latin-1 decoded

    dataset = Dataset.from_raw(raw)
    assert (dataset.card.n_interactions, dataset.n_users, dataset.n_items) == (100_000, 943, 1682)
    assert dataset.card.n_categories == 19


def test_ml_latest_small_ratings_and_tags(shared: Path) -> None:
    folder = shared / "ml-latest-small"
    raw = read(folder)
    log = raw.interactions.collect()
    ratings, tags = log.filter(pl.col("event") == "rating"), log.filter(pl.col("event") == "tag")
    assert (ratings.height, tags.height) == (100_836, 3_683)
    assert (ratings["user"].n_unique(), ratings["item"].n_unique()) == (610, 9_724)
    assert (tags["user"].n_unique(), tags["item"].n_unique()) == (58, 1_572)
    assert ratings["value"].min() == 0.5 and ratings["value"].max() == 5.0
    assert tags["value"].null_count() == tags.height
    # rows keep reading order: all ratings, then all tags, each with its own file and line
    assert log["event"][100_835] == "rating" and log["event"][100_836] == "tag"
    assert ratings.row(0)[6:] == (str(folder / "ratings.csv.gz"), 2)
    assert tags.row(0) == (2, 60756, 1445714994, 0, "tag", None, str(folder / "tags.csv"), 2)

    items = raw.items
    assert items is not None and items.height == 9_742
    assert items.filter(pl.col("item") == 114335).row(0) == (114335, "La cravate (1957)", [])
    assert items["categories"].explode().drop_nulls().n_unique() == 19


def test_ml_1m_layout_with_latin1_movies(shared: Path, tmp_path: Path) -> None:
    # The staged ml-1m has only a prefix of ratings.dat, so build the official layout from links.
    (tmp_path / "ratings.dat.gz").symlink_to(
        shared / "ml-1m" / "partial" / "ratings_prefix_users1-330.dat.gz"
    )
    (tmp_path / "movies.dat").symlink_to(shared / "ml-1m" / "movies.dat")
    raw = read(tmp_path)
    log = raw.interactions.collect()
    assert log.height == 49_856
    assert (log["user"].n_unique(), log["item"].n_unique()) == (330, 3_062)
    assert log.row(0) == (1, 1193, 978300760, 0, "rating", 5.0, str(tmp_path / "ratings.dat.gz"), 1)
    items = raw.items
    assert items is not None and items.height == 3_883
    assert items.filter(pl.col("item") == 73).row(0) == (73, "Misérables, Les (1995)", ["Drama", "Musical"])
    assert items["categories"].explode().n_unique() == 18


def test_tiny_100k_compressed_with_genre_file(write, tmp_path: Path) -> None:
    write("u.data.zst", "1\t10\t4\t100\n\n2\t20\t5\t200\n")
    flags = "|".join(["0"] * 17)
    write("u.item.gz", f"10|Caf\xe9 (1990)|01-Jan-1990||http://x|1|1|{flags}\n", encoding="latin-1")
    write("u.genre", "unknown|0\nA|1\n" + "".join(f"G{index}|{index}\n" for index in range(2, 19)) + "\n")
    raw = read_movielens(tmp_path)
    assert raw.interactions.collect()["line"].to_list() == [1, 3]
    assert raw.items is not None
    assert raw.items.row(0) == (10, "Café (1990)", ["unknown", "A"])


def test_100k_genres_default_to_the_official_list(write, tmp_path: Path) -> None:
    write("u.data", "1\t10\t4\t100\n")
    write("u.item", "10|T|d||u|" + "|".join(["0"] * 18) + "|1\n", encoding="latin-1")
    raw = read_movielens(tmp_path / "u.data")
    assert raw.items is not None and raw.items["categories"].to_list() == [[GENRES_100K[-1]]]


def test_tiny_10m_layout_utf8_movies_and_tags(write, tmp_path: Path) -> None:
    write("ratings.dat", "1::10::3.5::100\n1::11::4::101\n")
    write("tags.dat", "1::10::so: good::102\n")
    write("movies.dat", "10::Amélie (2001)::Comedy|Romance\n11::Ghost: Story (1990)::(no genres listed)\n")
    raw = read(tmp_path)
    log = raw.interactions.collect()
    assert log.select("item", "event", "value").rows() == [
        (10, "rating", 3.5),
        (11, "rating", 4.0),
        (10, "tag", None),
    ]
    assert log["file"].to_list()[-1] == str(tmp_path / "tags.dat")
    assert raw.items is not None
    assert raw.items.rows() == [(10, "Amélie (2001)", ["Comedy", "Romance"]), (11, "Ghost: Story (1990)", [])]


def test_ratings_csv_without_metadata(write, tmp_path: Path) -> None:
    path = write("ratings.csv.gz", "userId,movieId,rating,timestamp\n1,10,4.5,100\n")
    raw = read(path)
    assert raw.items is None
    assert raw.interactions.collect().row(0) == (1, 10, 100, 0, "rating", 4.5, str(path), 2)


def test_errors_name_file_and_line(write, tmp_path: Path) -> None:
    write("a/u.data", "1\t10\t4\t100\n1\t10\t4\n")
    with pytest.raises(DataError, match=r"a/u\.data:2: expected 4 tab-separated fields \(user, item, rating"):
        read(tmp_path / "a")
    write("b/ratings.dat", "1::10::4::100\n1::10::four::101\n")
    with pytest.raises(DataError, match=r"b/ratings\.dat:2: column 'rating': 'four' is not a number"):
        read(tmp_path / "b")
    write("c/ratings.csv", "userId,movieId,rating,timestamp\n1,10,4,yesterday\n")
    with pytest.raises(
        DataError, match=r"c/ratings\.csv:2: column 'timestamp': 'yesterday' is not integer unix"
    ):
        read(tmp_path / "c")
    write("d/ratings.csv", "userId,movieId,ratng,timestamp\n1,10,4,100\n")
    with pytest.raises(DataError, match=r"d/ratings\.csv: no column 'rating'.*\(did you mean 'ratng'\?\)"):
        read_movielens(tmp_path / "d")
    write("e/ratings.csv", "userId,movieId,rating,timestamp\n1,10,4,100\n")
    write("e/movies.csv", "movieId,title,genres\nx,T,Drama\n")
    with pytest.raises(DataError, match=r"e/movies\.csv:2: column 'movieId': 'x' is not an integer movie ID"):
        read(tmp_path / "e")


def test_folder_or_file_that_is_not_movielens(write, tmp_path: Path) -> None:
    (tmp_path / "f").mkdir()
    with pytest.raises(
        DataError, match=r"f: no MovieLens ratings file here \(looked for u\.data, ratings\.dat"
    ):
        read_movielens(tmp_path / "f")
    write("f/notes.csv", "a\n")  # the folder's one data file, read as MovieLens: its problem is named
    with pytest.raises(DataError, match=r"f/notes\.csv: no column 'userId'"):
        read(tmp_path / "f", format="movielens")
    with pytest.raises(DataError, match=r"g\.txt: not a MovieLens ratings file"):
        read(write("g.txt", "1 2\n"), format="movielens")
