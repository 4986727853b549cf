"""Tests for the generic CSV/TSV/Parquet table reader and its ColumnMapping."""

from __future__ import annotations

import datetime as dt
import gzip
import math
from pathlib import Path

import polars as pl
import pydantic
import pytest

from intentrec.catalogue import Catalogue
from intentrec.data.dataset import Dataset
from intentrec.data.raw import INTERACTION_COLUMNS
from intentrec.data.readers import ColumnMapping, detect_format, read
from intentrec.data.readers.table import read_table
from intentrec.errors import DataError

TIANCHI = ColumnMapping(event="behavior_type", categories="item_category", timestamp_format="%Y-%m-%d %H")


def test_tianchi_sample_with_a_mapping(shared: Path) -> None:
    path = shared / "tianchi-mobile-sample" / "tianchi_mobile_recommend_train_user_head.csv"
    raw = read(path, columns=TIANCHI)
    as_dict = read(path, columns=TIANCHI.model_dump(exclude_none=True))  # the mapping's fields as a dict
    assert as_dict.interactions.collect().equals(raw.interactions.collect())
    log = raw.interactions.collect()
    assert (raw.format, raw.timestamp_kind) == ("table", "unix_seconds")
    assert log.columns == list(INTERACTION_COLUMNS)
    # first row "98047837,232431562,1,,4245,2014-12-06 02" (hour resolution, taken as UTC)
    assert log.row(0) == (98047837, 232431562, 1417831200, 0, "1", None, str(path), 2)
    assert (log.height, log["user"].n_unique(), log["item"].n_unique()) == (1_999, 34, 1_689)
    assert dict(log.group_by("event").len().iter_rows()) == {"1": 1_876, "2": 18, "3": 70, "4": 35}
    assert (log["timestamp"].min(), log["timestamp"].max()) == (
        1416304800,
        1418943600,
    )  # 11-18 10h, 12-18 23h
    items = raw.items
    assert items is not None and items["categories"].explode().n_unique() == 464
    assert Dataset.from_raw(raw).n_users == 34


def test_blanks_around_header_names_are_not_part_of_them(write) -> None:
    rows = "1,10,1000,4\n2,11,1001,5\n"
    spaced = read(write("spaced.csv", "user_id, item_id, timestamp, rating\n" + rows.replace(",", ", ")))
    plain = read(write("plain.csv", "user_id,item_id,timestamp,rating\n" + rows))
    columns = ["user", "item", "timestamp", "value", "line"]
    assert spaced.interactions.collect()[columns].equals(plain.interactions.collect()[columns])
    mapped = read(write("m.csv", "who ,what\t, time\n1,10,1000\n"), columns={"user": "who", "item": "what"})
    assert mapped.interactions.collect()["item"].to_list() == [10]
    # columns named by blanks alone are no role's and stay apart; a mapping may name a column as spaced
    blank = read(write("b.csv", "user id,item,time,, \n1,10,1000,,\n"), columns={"user": " user id"})
    assert blank.interactions.collect()["user"].to_list() == [1]


@pytest.mark.parametrize(
    "times",
    [
        ("100.7", "100.2", "100.5", "100.7", "101"),
        [f"1970-01-01 00:01:{second}" for second in ("40.7", "40.2", "40.5", "40.7", "41")],
    ],
)
def test_events_within_a_second_keep_their_order_and_are_no_duplicates(write, times) -> None:
    late, early, middle, late_again, next_second = times
    rows = [f"1,10,{late}", f"1,10,{early}", f"1,20,{middle}", f"1,10,{late_again}", f"1,30,{next_second}"]
    path = write("log.csv", "user,item,timestamp\n" + "\n".join(rows) + "\n")
    ds = Dataset.from_raw(read(path))
    # item 10 at .2, item 20 at .5, item 10 again at .7 (its repeat at .7 dropped), then item 30
    assert ds.interactions.select("item_idx", "timestamp").rows() == [(0, 100), (1, 100), (0, 100), (2, 101)]
    assert ds.card.time_divisor == 1


def test_tianchi_without_a_timestamp_format_asks_for_one(shared: Path) -> None:
    path = shared / "tianchi-mobile-sample" / "tianchi_mobile_recommend_train_user_head.csv"
    with pytest.raises(
        DataError, match=r"head\.csv:2: column 'time': '2014-12-06 02' is not a timestamp.*timestamp_f"
    ):
        read(path, format="table")


def test_obvious_names_need_no_mapping(write) -> None:
    path = write("log.csv", "UserId;movieId;Rating;TS\n1;10;4.5;100\n2;11;3;2.5e2\n")
    raw = read(path)
    assert raw.format == "table" and raw.items is None
    assert raw.interactions.collect().drop("file").rows() == [
        (1, 10, 100, 0, "rating", 4.5, 2),
        (2, 11, 250, 0, "rating", 3.0, 3),
    ]


def test_tsv_with_iso_datetimes_string_ids_and_split_categories(write) -> None:
    text = (
        "user\titem\ttime\tevent\tgenres\n"
        "a\tB7\t2017-11-25T10:00:00Z\tview\tx|y\n"
        "a\t007\t2017-11-25T10:00:01Z\tbuy\t\n"
        "b\t007\t2017-11-25T10:00:02Z\tview\tz\n"  # the item's first row had its cell empty
    )
    raw = read(
        write("log.tsv.zst", text), columns=ColumnMapping(categories="genres", categories_separator="|")
    )
    assert raw.interactions.collect().select("user", "item", "timestamp", "event").rows() == [
        ("a", "B7", 1511604000, "view"),
        ("a", "007", 1511604001, "buy"),
        ("b", "007", 1511604002, "view"),
    ]
    assert raw.items is not None and raw.items.rows() == [("B7", None, ["x", "y"]), ("007", None, ["z"])]


def test_categories_written_as_lists_in_text_cells(write) -> None:
    rows = ['1,10,1,"[""Skin"", ""Face""]"', "1,11,2,\"['Hair']\"", "2,12,3,Nails", "2,13,4,[]", "2,14,5,"]
    path = write("cats.csv", "user,item,ts,cats\n" + "\n".join(rows) + "\n")
    items = read(path, columns=ColumnMapping(categories="cats")).items
    assert items is not None
    assert items["categories"].to_list() == [["Skin", "Face"], ["Hair"], ["Nails"], [], []]


def test_json_lines_as_amazon_writes_its_reviews(write) -> None:
    reviews = [
        '{"reviewerID": "A1", "asin": "B01", "overall": 5.0, "unixReviewTime": 1400000000, "tags": ["Skin"]}',
        '{"reviewerID": "A1", "asin": "B02", "overall": 4.0, "unixReviewTime": 1400000100}',
        '{"reviewerID": "A2", "asin": "B01", "overall": 3.0, "unixReviewTime": 1400000200, "vote": [0]}',
    ]
    path = write("reviews_Beauty_5.json.gz", "\n".join(reviews) + "\n")
    assert detect_format(path) == "table" and detect_format(write("log.jsonl", reviews[0])) == "table"
    raw = read(path, columns=ColumnMapping(categories="tags"))
    log = raw.interactions.collect()
    assert log.select("user", "item", "timestamp", "value", "line").rows() == [
        ("A1", "B01", 1400000000, 5.0, 1),
        ("A1", "B02", 1400000100, 4.0, 2),
        ("A2", "B01", 1400000200, 3.0, 3),
    ]
    assert raw.items is not None and raw.items["categories"].to_list() == [["Skin"], []]


def test_json_lines_errors_name_the_line(write) -> None:
    with pytest.raises(
        DataError, match=r"a\.jsonl:2: not valid JSON \(Expecting ',' delimiter at column 31\)"
    ):
        read(write("a.jsonl", '{"user": 1, "item": 2, "ts": 3}\n{"user": 1, "item": 3, "ts": 4\n'))
    with pytest.raises(DataError, match=r"b\.ndjson:2: each line must be one JSON object, not '\[1, 2\]'"):
        read(write("b.ndjson", '{"user": 1, "item": 2, "ts": 3}\n[1, 2]\n'))
    with pytest.raises(DataError, match=r"c\.jsonl:2: column 'ts': 'x' is not a timestamp"):
        read(write("c.jsonl", '{"user": 1, "item": 2, "ts": 3}\n{"user": 1, "item": 3, "ts": "x"}\n'))
    # blank lines count: polars skips them, the message must not
    text = '\n{"user": 1, "item": 2, "ts": 3}\n  \n\n{"user": 1, "item": 3, "ts": "x"}\n'
    with pytest.raises(DataError, match=r"d\.jsonl:5: column 'ts': 'x' is not a timestamp"):
        read(write("d.jsonl", text))
    raw = read(write("e.jsonl.gz", text.replace('"x"', "4")))
    assert raw.interactions.collect()["line"].to_list() == [2, 5]


def test_parquet_with_native_types_and_list_categories(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"
    pl.DataFrame(
        {
            "uid": [3, 4],
            "iid": ["p", "q"],
            "when": pl.Series(["2020-01-01 00:00:00", "2020-01-01 00:00:10"]).str.to_datetime(),
            "tags": [["a"], ["b", "c"]],
        }
    ).write_parquet(path)
    mapping = ColumnMapping(user="uid", item="iid", timestamp="when", categories="tags")
    raw = read(path, columns=mapping)
    assert raw.interactions.collect().select("user", "item", "timestamp", "event", "line").rows() == [
        (3, "p", 1577836800, "interaction", 1),
        (4, "q", 1577836810, "interaction", 2),
    ]
    assert raw.items is not None and raw.items["categories"].to_list() == [["a"], ["b", "c"]]


def test_a_column_has_one_role(write) -> None:
    path = write("log.csv", "user,item,time,rating\n1,10,100,4\n2,11,200,3\n")
    with pytest.raises(DataError, match=r"log\.csv: column 'item' is given 2 roles \(user, item\)"):
        read(path, columns=ColumnMapping(user="item", item="item"))
    # a role mapped to a column takes it from the role that would have guessed it by its name
    log = read(path, columns=ColumnMapping(timestamp="rating")).interactions.collect()
    assert log["timestamp"].to_list() == [4, 3] and log["value"].to_list() == [None, None]


def test_column_mapping_rejects_unknown_keys() -> None:
    with pytest.raises(pydantic.ValidationError, match="usr"):
        ColumnMapping(usr="user")  # type: ignore[call-arg]


def test_errors_name_file_line_and_column(write, tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"a\.csv: no column 'usr_id'.*\(did you mean 'user_id'\?\)"):
        read(write("a.csv", "user_id,item,ts\n1,2,3\n"), columns=ColumnMapping(user="usr_id"))
    with pytest.raises(DataError, match=r"b\.csv: no column for the user; .*\(did you mean 'usr_id'\?\)"):
        read(write("b.csv", "usr_id,item,ts\n1,2,3\n"))
    with pytest.raises(DataError, match=r"c\.csv: no column for the user.*The first line looks like data"):
        read(write("c.csv", "1,2,3\n4,5,6\n"), format="table")
    with pytest.raises(DataError, match=r"d\.csv:3: column 'rating': 'n/a' is not a number"):
        read(write("d.csv", "user,item,ts,rating\n1,2,3,4\n1,2,3,n/a\n"))
    with pytest.raises(DataError, match=r"e\.csv: the file is empty"):
        read(write("e.csv", ""), format="table")
    with pytest.raises(DataError, match=r"f\.csv\.gz:3: the bytes b'\\xe9' are not valid UTF-8"):
        read(write("f.csv.gz", b"user,item,ts\n1,2,3\n1,\xe9,3\n"))
    pl.DataFrame(schema={"user": pl.Int64, "item": pl.Int64, "ts": pl.Int64}).write_parquet(
        tmp_path / "g.parquet"
    )
    with pytest.raises(DataError, match=r"g\.parquet: the table has no rows"):
        read(tmp_path / "g.parquet")
    with pytest.raises(DataError, match=r"h\.parquet: cannot read the file: parquet"):
        read(write("h.parquet", "user,item\n"))
    with pytest.raises(DataError, match=r"i\.csv:3: a row has more fields than the header"):
        read_table(write("i.csv", "user,item,ts\n1,2,3\n1,2,3,4\n"))
    # a quote opened in one row and closed two rows later: the rows between would vanish into one ID
    with pytest.raises(DataError, match=r"u\.csv:2: column 'item': .* is not an ID on one line"):
        read(write("u.csv", 'user,item,ts\n1,"2,3\n4,5,6\n7,8",9\n10,11,12\n'))
    with pytest.raises(DataError, match=r"t\.csv: a column named 'line' cannot be read; rename it"):
        read_table(write("t.csv", "line,item,ts\n1,2,3\n"), ColumnMapping(user="line"))
    with pytest.raises(DataError, match=r"j\.csv:1: the column 'item' appears twice in the header"):
        read(write("j.csv", "user,item,ts,item\n1,2,3,4\n"))
    with pytest.raises(DataError, match=r"o\.csv:1: the column 'item' appears twice in the header"):
        read(write("o.csv", "user,item,ts, item\n1,2,3,4\n"))
    compressed = write("k.csv", gzip.compress(b"user,item,ts\n1,2,3\n"))
    with pytest.raises(DataError, match=r"k\.csv: the file is compressed \(\.gz\); name it k\.csv\.gz"):
        read(compressed)
    for name, row in (("m.csv", '1,"2,3'), ("n.csv", '1,"2"x,3')):  # a quote left open; text after one
        with pytest.raises(DataError, match=rf"{name[0]}\.csv:5: a quoted field is left open, or text"):
            read(write(name, f'user,item,ts\n1,"2",3\n1,"a "",b\nc",4\n{row}\n1,5,6\n'))
    with pytest.raises(DataError, match=r"l\.csv:3: missing value in column 'event'"):
        Dataset.from_raw(read(write("l.csv", "user,item,ts,event\n1,2,3,view\n1,3,4,\n")))
    for rating in ("NaN", "inf"):  # a NaN rating would pass every rating filter
        with pytest.raises(DataError, match=rf"s\.csv:3: column 'rating': '{rating}' is not a number"):
            read(write("s.csv", f"user,item,ts,rating\n1,2,3,4\n1,3,4,{rating}\n"))
    # blank or quoted empty is missing too, not an ID or event type ""
    for name, row in (("p.csv", '"",3,4,view'), ("q.csv", "  ,3,4,view")):
        with pytest.raises(DataError, match=rf"{name[0]}\.csv:3: missing value in column 'user'"):
            Dataset.from_raw(read(write(name, f"user,item,ts,event\n1,2,3,view\n{row}\n")))
    with pytest.raises(DataError, match=r"r\.csv:3: missing value in column 'event'"):
        Dataset.from_raw(read(write("r.csv", 'user,item,ts,event\n1,2,3,view\n1,3,4," "\n')))
    # empty where the log is read, text in a column it does not read: no blank line to skip
    with pytest.raises(DataError, match=r"o\.csv:3: missing value in column 'user'"):
        Dataset.from_raw(read(write("o.csv", "user,item,ts,note\n1,2,3,a\n,,,b\n1,3,4,c\n")))


def test_whole_numbers_stored_as_floats_are_integer_ids(tmp_path: Path) -> None:
    path = tmp_path / "log.parquet"  # as pandas writes an ID column that had a gap
    pl.DataFrame({"user": [1.0, 2.0], "item": [7.0, 8.0], "ts": [1, 2]}).write_parquet(path)
    log = read(path).interactions.collect()
    assert log["user"].to_list() == [1, 2] and log["item"].to_list() == [7, 8]
    assert log["item"].dtype == pl.Int64
    pl.DataFrame({"user": [1.0, 2.0], "item": [7.5, 8.0], "ts": [1, 2]}).write_parquet(path)
    assert read(path).interactions.collect()["item"].to_list() == ["7.5", "8.0"]  # not IDs to round
    pl.DataFrame({"user": [1.0, math.nan], "item": [7.0, 8.0], "ts": [1, 2]}).write_parquet(path)
    with pytest.raises(DataError, match=r"log\.parquet:2: missing value in column 'user'"):  # not "NaN"
        Dataset.from_raw(read(path))
    # past Int64's largest, as a float or in UInt64: kept apart as text, never a wrapped integer
    pl.DataFrame({"user": [1.0, 1e20], "item": [7, 8], "ts": [1, 2]}).write_parquet(path)
    assert read(path).interactions.collect()["user"].to_list() == ["1.0", "1e+20"]
    for column, values in (("user", [[1], [2]]), ("ts", [dt.timedelta(1), dt.timedelta(2)])):
        pl.DataFrame({"user": [1, 2], "item": [7, 8], "ts": [1, 2]} | {column: values}).write_parquet(path)
        with pytest.raises(
            DataError, match=rf"log\.parquet: column '{column}' holds .*cannot be read as the"
        ):
            read(path)
    huge = pl.Series([1, 2**64 - 1], dtype=pl.UInt64)
    pl.DataFrame({"user": [1, 2], "item": huge, "ts": [1, 2]}).write_parquet(path)
    assert read(path).interactions.collect()["item"].to_list() == ["1", str(2**64 - 1)]


@pytest.mark.parametrize(
    ("unit", "factor"), [("seconds", 1), ("milliseconds", 10**3), ("nanoseconds", 10**9)]
)
def test_times_in_a_finer_unit_are_read_as_seconds(write, caplog, unit: str, factor: int) -> None:
    seconds = [1_600_000_000, 1_600_000_060, 1_600_000_120]
    rows = "".join(f"u1,i{i},{t * factor}\n" for i, t in enumerate(seconds))
    rows += f"u1,late,{seconds[0] * factor + factor // 2}\nu1,early,{seconds[0] * factor + factor // 4}\n"
    dataset = Dataset.from_raw(read(write("log.csv", "user,item,timestamp\n" + rows)))
    assert dataset.card.time_divisor == factor
    assert dataset.interactions["timestamp"].to_list() == [seconds[0]] * 3 + seconds[1:]
    order = dataset.item_ids(dataset.interactions["item_idx"]).to_list()
    # within a second, the finer unit still orders the events (whole seconds: the order of the file)
    assert order == (["i0", "late", "early"] if factor == 1 else ["i0", "early", "late"]) + ["i1", "i2"]
    assert (f"the times are in {unit}" in caplog.text) == (factor > 1)
    # a history brought at serving time is in the log's unit too
    times = [seconds[1] * factor, seconds[0] * factor + factor // 2, seconds[0] * factor]
    brought = Catalogue(dataset).encode_history(["i1", "late", "i0"], timestamps=times)
    assert brought.history.timestamps.tolist() == [seconds[0], seconds[0], seconds[1]]
    in_order = ["late", "i0"] if factor == 1 else ["i0", "late"]  # a tie keeps the order given
    assert dataset.item_ids(brought.history.items).to_list() == [*in_order, "i1"]


@pytest.mark.parametrize(
    ("unit", "factor"), [("seconds", 1), ("milliseconds", 10**3), ("microseconds", 10**6)]
)
def test_a_row_in_a_finer_unit_than_the_log_is_named(write, unit: str, factor: int) -> None:
    rows = f"u1,i1,{1_600_000_000 * factor}\nu1,i2,{1_600_000_060 * factor}\n"
    stray = 1_600_000_120 * factor * 1000
    path = write("log.csv", f"user,item,timestamp\n{rows}u2,i3,{stray}\n")
    with pytest.raises(
        DataError, match=rf"log\.csv:4: time {stray} is after the year 5000 if it counts {unit}"
    ):
        Dataset.from_raw(read(path))
