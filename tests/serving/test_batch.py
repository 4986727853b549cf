"""Batch recommendations streamed to Parquet or CSV: the table of ``Recommender.recommend``, atomically."""

from __future__ import annotations

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from intentrec.catalogue import Catalogue, UnknownIdError
from intentrec.errors import ConfigError
from intentrec.recommender import Recommender
from intentrec.serving.batch import read_user_ids, write_recommendations


def test_every_user_in_blocks_gives_the_table_of_recommend(recommender, tmp_path) -> None:
    blocks = []
    out = tmp_path / "recs.parquet"
    rows = write_recommendations(recommender, out, k=5, block_size=7, on_block=blocks.append)
    assert sum(blocks) == recommender.catalogue.n_users and len(blocks) > 1
    written = pl.read_parquet(out)
    assert rows == written.height == 5 * recommender.catalogue.n_users
    assert_frame_equal(written, recommender.recommend(k=5))


def test_one_user_alone_is_one_user(recommender, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    write_recommendations(recommender, out, "u9", k=3)  # not the users "u" and "9"
    assert_frame_equal(pl.read_parquet(out), recommender.recommend("u9", k=3))


def test_chosen_users_keep_their_order_and_the_filters_apply(recommender, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    write_recommendations(recommender, out, ["u9", "u2"], k=3, exclude_categories=["even"])
    written = pl.read_parquet(out)
    assert written["user"].unique(maintain_order=True).to_list() == ["u9", "u2"]
    assert_frame_equal(written, recommender.recommend(["u9", "u2"], k=3, exclude_categories=["even"]))


def test_one_request_time_for_the_whole_file(asked_run, tmp_path, monkeypatch) -> None:
    """A model that reads the time of the request: every block is asked at the same time, now by default."""
    recommender = Recommender.load(asked_run)
    out = tmp_path / "recs.parquet"
    write_recommendations(recommender, out, ["u3", "u5"], k=3, block_size=1, at=1_650_000_000)
    assert_frame_equal(pl.read_parquet(out), recommender.recommend(["u3", "u5"], k=3, at=1_650_000_000))
    clock = iter(range(1_700_000_000, 9_000_000_000, 10**9))  # a clock read once per block would move
    monkeypatch.setattr(recommender.catalogue, "now", lambda: next(clock))
    write_recommendations(recommender, out, ["u3", "u5"], k=3, block_size=1)
    assert_frame_equal(pl.read_parquet(out), recommender.recommend(["u3", "u5"], k=3, at=1_700_000_000))


def test_no_users_still_gives_every_column(recommender, tmp_path) -> None:
    out = tmp_path / "recs.parquet"
    assert write_recommendations(recommender, out, [], k=3) == 0
    written = pl.read_parquet(out)
    assert written.columns == ["user", "rank", "item", "score", "head"] and written.height == 0


def test_a_csv_file_name_gives_the_same_table_as_csv(recommender, tmp_path) -> None:
    out = tmp_path / "recs.csv"
    assert write_recommendations(recommender, out, ["u9", "u2"], k=3) == 6
    expected = recommender.recommend(["u9", "u2"], k=3)
    assert_frame_equal(pl.read_csv(out, schema=expected.schema), expected)


@pytest.mark.parametrize(
    ("name", "words"),
    [("folder", "that is a folder"), ("recs.json", r"expected a \.parquet or \.csv file name"),
     ("file.txt/recs.parquet", r".*file\.txt is a file, not a folder")],
)  # fmt: skip
def test_an_output_that_cannot_be_written_fails_before_ranking(
    recommender, tmp_path, monkeypatch, name, words
):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file.txt").write_text("mine")
    monkeypatch.setattr(Recommender, "recommend", lambda *args, **kwargs: pytest.fail("ranked first"))
    with pytest.raises(ConfigError, match=f"--out {tmp_path / name}: {words}"):
        write_recommendations(recommender, tmp_path / name, ["u1"])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["file.txt", "folder"]


def test_an_unknown_user_fails_before_anything_is_written(recommender, tmp_path) -> None:
    with pytest.raises(UnknownIdError, match=r"unknown user id\(s\) \['ghost'\]"):
        write_recommendations(recommender, tmp_path / "recs.parquet", ["u1", "ghost"])
    assert list(tmp_path.iterdir()) == []


def test_a_failure_part_way_leaves_the_previous_file_untouched(recommender, tmp_path, monkeypatch) -> None:
    out = tmp_path / "recs.parquet"
    write_recommendations(recommender, out, ["u1"], k=2)  # the previous file
    previous = out.read_bytes()
    recommend, calls = Recommender.recommend, []

    def fails_on_the_second_block(self, users=None, *args, **kwargs):
        calls.append(users)
        if len(calls) == 3:  # the schema, one block, then this
            raise RuntimeError("disk full")
        return recommend(self, users, *args, **kwargs)

    monkeypatch.setattr(Recommender, "recommend", fails_on_the_second_block)
    with pytest.raises(RuntimeError, match="disk full"):
        write_recommendations(recommender, out, block_size=10)
    assert out.read_bytes() == previous
    assert [path.name for path in tmp_path.iterdir()] == ["recs.parquet"]


def test_user_files_hold_one_id_per_line(recommender, tmp_path, caplog) -> None:
    path = tmp_path / "users.txt"
    path.write_text("u1\n\n  u2  \nu3")
    assert read_user_ids(path, recommender.catalogue) == ["u1", "u2", "u3"]
    path.write_bytes(b"\xef\xbb\xbfu1\r\nu2\r\n")  # as a Windows editor saves it: a BOM, CRLF
    assert read_user_ids(path, recommender.catalogue) == ["u1", "u2"]
    path.write_text("u2\nu1\nu2\nu1\nu3\n")
    assert read_user_ids(path, recommender.catalogue) == ["u2", "u1", "u3"]  # each once, as first named
    assert "2 line(s) repeat a user named before (the first on line 3)" in caplog.text


def test_integer_user_ids_repeat_whatever_their_spelling(make_dataset, tmp_path, caplog) -> None:
    catalogue = Catalogue(make_dataset([(7, 1, 1), (7, 2, 2), (8, 1, 3)]))
    path = tmp_path / "users.txt"
    path.write_text("07\n8\n7\n")
    assert read_user_ids(path, catalogue) == ["07", "8"]
    assert "1 line(s) repeat a user named before (the first on line 3)" in caplog.text


def test_an_unknown_user_in_a_file_is_named_with_its_line(recommender, tmp_path) -> None:
    path = tmp_path / "users.txt"
    path.write_text("u1\nuser\nu2\nnobody\n")  # a header line, and an ID the run never met
    with pytest.raises(UnknownIdError, match=rf"--users {path}:2: unknown user id 'user' \(and 1 more\)"):
        read_user_ids(path, recommender.catalogue)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (None, "no such file"),
        ("folder", "that is a folder"),
        (b"\n \n", "the file has no user IDs"),
        (b"u1\n\xff\xfe", "not a UTF-8 text file"),
    ],
)
def test_bad_user_files_are_named(recommender, tmp_path, content, words) -> None:
    path = tmp_path / "users.txt"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=f"--users {path}: {words}"):
        read_user_ids(path, recommender.catalogue)


@pytest.mark.parametrize("name", ["recs.parquet", "recs.csv"])
def test_only_a_file_of_recommendations_is_replaced(recommender, tmp_path, name) -> None:
    out = tmp_path / name
    write_recommendations(recommender, out, ["u1"], k=3)
    write_recommendations(recommender, out, ["u2", "u3"], k=2)  # a rerun replaces its own file
    read = pl.read_parquet if name.endswith(".parquet") else pl.read_csv
    assert read(out).height == 4
    for content in (b"user,item,timestamp\n1,2,3\n", b"\x00\xff not a table"):
        out.write_bytes(content)  # say, the log itself, given as --out by mistake
        with pytest.raises(ConfigError, match=f"--out {out}: the file exists and holds no recommendations"):
            write_recommendations(recommender, out, ["u1"], k=3)
        assert out.read_bytes() == content
