"""Tests for the shared file helpers: paths, decompression, UTF-8 checks and line-numbered tables."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from intentrec.data.readers import files
from intentrec.errors import DataError


@pytest.mark.parametrize("name", ["log.txt", "log.txt.gz", "log.txt.zst"])
def test_read_lines_counts_every_line_and_skips_blank_ones(write, name: str) -> None:
    path = write(name, "a b\n\n  \nc d\r\ne\n\n")
    lines = files.read_lines(path)
    assert lines["line"].to_list() == [1, 4, 5]
    assert lines["text"].to_list() == ["a b", "c d", "e"]


def test_compressed_file_is_decompressed_to_a_temporary_file_that_is_removed(write) -> None:
    path = write("x.csv.zst", "a,b\n1,2\n")
    with files.plain_file(path) as plain:
        assert plain != path and plain.read_text() == "a,b\n1,2\n"
    assert not plain.exists()
    with files.plain_file(write("y.csv", "a\n")) as plain:
        assert plain.name == "y.csv"


def test_strip_compression_and_find_file(tmp_path: Path, write) -> None:
    assert files.strip_compression("u.data.gz") == "u.data"
    assert files.strip_compression("u.data.zst") == "u.data"
    assert files.strip_compression("u.data") == "u.data"
    write("u.item.zst", "x")
    assert files.find_file(tmp_path, "u.item") == tmp_path / "u.item.zst"
    assert files.find_file(tmp_path, "u.data") is None


def test_missing_path_suggests_a_near_name(tmp_path: Path, write) -> None:
    write("ratings.csv", "a\n")
    with pytest.raises(
        DataError, match=r"ratngs\.csv: no such file or folder \(did you mean 'ratings\.csv'\?\)"
    ):
        files.existing_path(tmp_path / "ratngs.csv")
    with pytest.raises(DataError, match="does not exist either"):
        files.existing_path(tmp_path / "nowhere" / "x.csv")


def test_corrupt_compressed_file_is_a_data_error(write) -> None:
    path = write("bad.csv.gz", b"")
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    for read in (files.read_bytes, files.head_lines, files.read_lines):
        with pytest.raises(DataError, match=r"bad\.csv\.gz: cannot decompress"):
            read(path)


@pytest.mark.parametrize("name", ["cut.csv.gz", "cut.csv.zst"])
def test_a_compressed_file_cut_short_is_a_data_error_not_a_shorter_log(write, name: str) -> None:
    rows = "".join(f"u{i},i{i % 97},{1000 + i}\n" for i in range(50_000))
    whole = write(name, "user,item,timestamp\n" + rows)
    assert files.read_csv(whole, ",").height == 50_000  # several frames or blocks, read whole
    whole.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    for read in (files.read_bytes, files.read_lines, lambda path: files.read_csv(path, ",")):
        with pytest.raises(DataError, match=rf"{name}: cannot decompress the file \(.*ended before"):
            read(whole)


def test_empty_and_blank_files(write) -> None:
    with pytest.raises(DataError, match=r"empty\.txt: the file is empty"):
        files.read_lines(write("empty.txt", ""))
    with pytest.raises(DataError, match=r"empty\.txt\.gz: the file is empty"):
        files.read_lines(write("empty.txt.gz", ""))
    with pytest.raises(DataError, match=r"blank\.txt: the file has no data \(only blank lines\)"):
        files.read_lines(write("blank.txt", "\n \n"))
    with pytest.raises(DataError, match=r"header\.csv: the file has a header \(line 1\) but no data rows"):
        files.read_csv(write("header.csv", "a,b\n\n"), ",")


def test_invalid_utf8_names_the_line(write) -> None:
    path = write("bad.txt.gz", b"1 2\n3 4\n5 \xff6\n")
    with pytest.raises(DataError, match=r"bad\.txt\.gz:3: the bytes b'\\xff' are not valid UTF-8"):
        files.read_lines(path)
    with pytest.raises(DataError, match=r"bad\.csv:2: the bytes b'\\xe9' are not valid UTF-8"):
        files.read_csv(write("bad.csv", b"a,b\nMis\xe9rables,1\n"), ",")


def test_utf8_scan_carries_characters_cut_by_a_chunk_boundary(write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(files, "_CHUNK", 4)
    good = write("good.txt", "ab\né\ncé\n€€\n")  # 2- and 3-byte characters straddle 4-byte chunks
    assert files.first_invalid_utf8(good) is None
    assert files.first_invalid_utf8(write("bad.txt", b"ab\n\xc3\xa9\nc\xff\n")) == (3, b"\xff")
    assert files.first_invalid_utf8(write("cut.txt", b"ab\ncd\xe2\x82")) == (2, b"\xe2\x82")


def test_split_fields_requires_the_field_count(write) -> None:
    lines = files.read_lines(write("u.data", "1\t2\t3\t4\n1\t2\t3\n")).lazy()
    with pytest.raises(
        DataError, match=r"u\.data:2: expected 4 tab-separated fields \(a, b, c, d\), found 3"
    ):
        files.split_fields(lines, Path("u.data"), "\t", ["a", "b", "c", "d"])


def test_read_csv_keeps_line_numbers_and_strips_values(write) -> None:
    path = write("t.csv", 'a,b\n1, x \n\n"2,5",y\n')
    table = files.read_csv(path, ",")
    assert table.to_dicts() == [{"line": 2, "a": "1", "b": "x"}, {"line": 4, "a": "2,5", "b": "y"}]
    assert files.read_csv(path, ",", columns=["b"]).columns == ["line", "b"]


def test_read_csv_names_a_line_with_too_many_fields(write) -> None:
    with pytest.raises(DataError, match=r"t\.csv:3: a row has more fields than the header"):
        files.read_csv(write("t.csv", "a,b\n1,2\n3,4,5\n"), ",")
    # a separator inside quotes is no field: the row to blame is the one with a field too many
    with pytest.raises(DataError, match=r"q\.csv:5: a row has more fields than the header"):
        files.read_csv(write("q.csv", 'a,b\n"1,x",2\n"3\n4",5\n6,7,8\n'), ",")


def test_sniff_separator_and_head_lines(write) -> None:
    assert files.sniff_separator("a\tb\tc") == "\t"
    assert files.sniff_separator("a;b;c") == ";"
    assert files.sniff_separator("a|b") == "|"
    assert files.sniff_separator("single") == ","
    path = write("h.csv.gz", "\ufeffuser,item\n\n1,2\n")
    assert files.head_lines(path, 5) == ["user,item", "1,2"]
    assert gzip.decompress(path.read_bytes()).startswith(b"\xef\xbb\xbf")


def test_csv_header_reads_only_the_first_line(write) -> None:
    assert files.csv_header(write("h.csv.gz", '\ufeffuser,"item, id"\r\n1,2\n'), ",") == ["user", "item, id"]
    with pytest.raises(DataError, match=r"h\.csv:1: the bytes b'\\xe9' are not valid UTF-8"):
        files.csv_header(write("h.csv", b"us\xe9r,item\n1,2\n"), ",")
    with pytest.raises(DataError, match=r"e\.csv\.zst: the file is empty"):
        files.csv_header(write("e.csv.zst", "\n"), ",")
    with pytest.raises(DataError, match=r"b\.csv:1: cannot read the header row"):
        files.csv_header(write("b.csv", "\nuser,item\n"), ",")
