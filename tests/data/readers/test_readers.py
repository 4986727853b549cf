"""Tests for ``read`` and ``detect_format``: picking the reader from what is found at a path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from intentrec.data.readers import FORMATS, ColumnMapping, detect_format, read
from intentrec.errors import DataError


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("ml-100k/raw", "movielens"),
        ("ml-100k/raw/u.data.gz", "movielens"),
        ("ml-100k/recbole", "recbole"),
        ("ml-100k/recbole/ml-100k.inter.gz", "recbole"),
        ("ml-latest-small", "movielens"),
        ("ml-latest-small/ratings.csv.gz", "movielens"),
        ("ml-1m/partial/ratings_prefix_users1-330.dat.gz", "movielens"),
        ("s3rec-seq/Beauty.txt.gz", "sequence"),
        ("taobao-userbehavior-sample", "taobao"),
        ("taobao-userbehavior-sample/UserBehavior_head.csv", "taobao"),
        ("tianchi-mobile-sample/tianchi_mobile_recommend_train_user_head.csv", "table"),
    ],
)
def test_detects_the_real_datasets(shared: Path, relative: str, expected: str) -> None:
    assert detect_format(shared / relative) == expected


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("u.data.zst", "1\t2\t3\t4\n", "movielens"),
        ("ratings.dat", "1::2::3::4\n", "movielens"),
        ("prefix.dat.gz", "1::2::3.5::4\n", "movielens"),
        ("my_ratings.csv", "userId,movieId,rating,timestamp\n1,2,3,4\n", "movielens"),
        ("ratings.csv", "user,item,rating,ts\n1,2,3,4\n", "table"),
        ("x.inter", "user_id:token\titem_id:token\n", "recbole"),
        ("Toys.txt.zst", "1 2 3\n", "sequence"),
        ("ub.csv.gz", "1,2,3,buy,4\n", "taobao"),
        ("log.csv", "user,item,ts\n1,2,3\n", "table"),
        ("log.tsv", "user\titem\tts\n", "table"),
        ("log.parquet", "not looked at", "table"),
    ],
)
def test_detects_tiny_files(write, name: str, content: str, expected: str) -> None:
    assert detect_format(write(name, content)) == expected


def test_folder_with_a_single_data_file_is_read_as_that_file(write, tmp_path: Path) -> None:
    write("seq/README.txt", "about these files")
    write("seq/Toys_item2attributes.json", "{}")
    path = write("seq/Toys.txt.gz", "1 2 3\n")
    assert detect_format(tmp_path / "seq") == "sequence"
    raw = read(tmp_path / "seq")
    assert raw.source == str(tmp_path / "seq")
    assert raw.interactions.collect()["file"].unique().to_list() == [str(path)]


def test_folder_with_a_single_ratings_file_of_another_name_is_read_as_that_file(shared, tmp_path) -> None:
    (tmp_path / "ml").mkdir()
    (tmp_path / "ml" / "prefix.dat.gz").symlink_to(shared / "ml-1m/partial/ratings_prefix_users1-330.dat.gz")
    assert detect_format(tmp_path / "ml") == "movielens"
    raw = read(tmp_path / "ml")
    assert raw.source == str(tmp_path / "ml") and raw.interactions.collect().height == 49_856


def test_compressed_files_of_one_name_in_two_folders_are_read_apart(write, tmp_path: Path) -> None:
    first, second = (
        write("a/log.csv.gz", "user,item,ts\n1,2,3\n"),
        write("b/log.csv.gz", "user,item,ts\n7,8,9\n"),
    )
    os.utime(second, ns=(first.stat().st_atime_ns, first.stat().st_mtime_ns))  # same name, size and time
    lazy = read(first).interactions
    assert read(second).interactions.collect()["user"].to_list() == [7]
    assert lazy.collect()["user"].to_list() == read(first).interactions.collect()["user"].to_list() == [1]


def test_format_overrides_detection(write) -> None:
    path = write("ub.csv", "user,item,ts\n1,2,3\n")
    assert read(path, format="table").format == "table"
    assert read(write("Toys.dat", "1 2 3\n"), format="sequence").format == "sequence"


def test_a_column_mapping_means_table(write) -> None:
    path = write("ub.csv", "1,2,3,pv,4\n")
    assert detect_format(path) == "taobao"
    with pytest.raises(DataError, match=r"ub\.csv: no column 'u'"):
        read(path, columns=ColumnMapping(user="u"))
    with pytest.raises(
        DataError, match=r"ub\.csv: a column mapping only applies to the 'table' format, not to 'taobao'"
    ):
        read(path, format="taobao", columns=ColumnMapping())


def test_unknown_format_names_the_known_ones(write) -> None:
    path = write("log.csv", "user,item,ts\n1,2,3\n")
    with pytest.raises(
        DataError,
        match=r"unknown format 'movielense'; expected one of movielens, .*\(did you mean 'movielens'\?\)",
    ):
        read(path, format="movielense")
    assert FORMATS == ("movielens", "recbole", "sequence", "taobao", "table")


def test_detection_errors(write, tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"Beuty\.txt: no such file or folder \(did you mean 'Beauty\.txt'\?\)"
    ):
        read(write("Beauty.txt", "1 2\n").parent / "Beuty.txt")
    with pytest.raises(
        DataError, match=r"notes\.txt: cannot tell the format from the name and first line \('hello world'\)"
    ):
        detect_format(write("notes.txt", "hello world\n"))
    with pytest.raises(DataError, match=r"data\.json: cannot tell the format"):
        detect_format(write("data.json", "[1, 2]\n"))  # a JSON array, not JSON Lines
    with pytest.raises(DataError, match=r"empty\.csv: the file is empty"):
        detect_format(write("empty.csv", "\n\n"))
    with pytest.raises(
        DataError, match=r"several: several data files \(A\.txt\.gz, B\.txt\); pass the one to read"
    ):
        write("several/A.txt.gz", "1 2\n")
        write("several/B.txt", "1 2\n")
        read(tmp_path / "several")
    with pytest.raises(
        DataError,
        match=r"nothing: no data file here \(looked for \.csv, \.tsv, \.parquet, \.jsonl, \.ndjson, \.txt",
    ):
        write("nothing/README", "x")
        detect_format(tmp_path / "nothing")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("ml/ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n"),
        ("ml/u.data.gz", "1\t2\t3\t4\n"),
        ("x.inter", "user_id:token\titem_id:token\n1\t2\n"),
        ("Toys.txt", "1 2 3\n"),
        ("ub.csv.gz", "1,2,3,buy,4\n"),
        ("log.tsv.zst", "user\titem\tts\tnote\n1\t2\t3\tunused\n"),
    ],
)
def test_readers_return_a_lazy_scan_of_the_file_not_a_loaded_table(write, name: str, content: str) -> None:
    """A log larger than memory must never be loaded by a reader: Dataset.from_raw streams it later."""
    lazy = read(write(name, content)).interactions  # the RawLog itself is gone: the scan must still work
    assert "SCAN" in lazy.explain()
    assert lazy.collect().height > 0
