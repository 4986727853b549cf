"""Tests for the shared column conversions: checked casts, raw IDs, timestamps, table shapes."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from intentrec.data.raw import INTERACTION_COLUMNS, ITEM_COLUMNS
from intentrec.data.readers import columns
from intentrec.errors import DataError

PATH = Path("log.csv")


def frame(values: list, dtype: pl.DataType = pl.String()) -> pl.LazyFrame:
    return pl.LazyFrame({"x": pl.Series(values, dtype=dtype), "line": range(2, 2 + len(values))})


def times(table: pl.LazyFrame, timestamp_format: str | None = None) -> list[tuple]:
    """What a reader does: build the conversion, run its checks, then collect (seconds, microseconds)."""
    whole, fraction, checks = columns.unix_seconds(table, "x", PATH, timestamp_format)
    columns.run_checks(table, PATH, checks)
    return table.select(whole.alias("s"), fraction.alias("us")).collect().rows()


def seconds(table: pl.LazyFrame, timestamp_format: str | None = None) -> list:
    return [whole for whole, _ in times(table, timestamp_format)]


def test_checked_cast_names_line_value_and_count() -> None:
    expression, check = columns.checked_cast("x", pl.Int64(), "an integer")
    columns.run_checks(frame([" 1", "2", None]), PATH, [check])
    assert frame([" 1", "2", None]).select(expression).collect()["x"].to_list() == [1, 2, None]
    with pytest.raises(
        DataError, match=r"log\.csv:3: column 'x': 'b' is not an integer \(2 such row\(s\) in all\)"
    ):
        columns.run_checks(frame(["1", "b", "c"]), PATH, [check])


def test_run_checks_reports_the_first_failing_check_and_returns_facts() -> None:
    table = pl.LazyFrame({"x": ["1", "2"], "y": ["a", "b"], "line": [2, 3]})
    _, x_check = columns.checked_cast("x", pl.Int64(), "an integer")
    _, y_check = columns.checked_cast("y", pl.Int64(), "an integer", what="the y field")
    assert columns.run_checks(table, PATH, [x_check], {"rows": pl.len()}) == {"rows": 2}
    with pytest.raises(DataError, match=r"log\.csv:2: the y field: 'a' is not an integer \(2 such"):
        columns.run_checks(table, PATH, [x_check, y_check])


def test_require_columns_suggests_the_near_name() -> None:
    columns.require_columns(["user", "item"], ["item"], PATH)
    with pytest.raises(DataError, match=r"log\.csv: no column 'itme'; .*'item'.* \(did you mean 'item'\?\)"):
        columns.require_columns(["user", "item"], ["itme"], PATH)


@pytest.mark.parametrize(
    ("values", "dtype", "expected"),
    [
        (["1", "20", None], pl.String(), pl.Int64()),
        (["1", "007"], pl.String(), pl.String()),  # leading zeros: two raw IDs must never become one
        (["A1", "2"], pl.String(), pl.String()),
        ([1, 2], pl.Int32(), pl.Int64()),
    ],
)
def test_raw_ids_are_integers_only_when_lossless(
    values: list, dtype: pl.DataType, expected: pl.DataType
) -> None:
    table = frame(values, dtype)
    as_integers = columns.run_checks(table, PATH, [], {"x": columns.ids_are_integers(table, "x")})["x"]
    assert table.select(columns.raw_ids(table, "x", as_integers)).collect_schema()["x"] == expected


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["881250949", "881250950"], [881250949, 881250950]),
        (["881250949.0", "881250950.7", "881250951"], [881250949, 881250950, 881250951]),
        (["1970-01-02", "1970-01-03"], [86400, 172800]),
        (["1970-01-01 00:01:00", "1970-01-01T00:00:01.5"], [60, 1]),
        (["1970-01-01T00:00:01Z"], [1]),
        (["2017-11-25T10:00:00+01:00"], [1511600400]),
        ([None, "5"], [None, 5]),
    ],
)
def test_unix_seconds_from_text(values: list, expected: list) -> None:
    assert seconds(frame(values)) == expected


def test_unix_seconds_from_typed_columns() -> None:
    assert seconds(frame([5, 6], pl.Int32())) == [5, 6]
    assert seconds(frame([5.9], pl.Float64())) == [5]
    stamp = datetime(2017, 11, 25, 10, tzinfo=UTC)
    assert seconds(frame([stamp], pl.Datetime("us", "UTC"))) == [1511604000]
    assert seconds(frame([date(1970, 1, 3)], pl.Date())) == [172800]


def test_parts_of_a_second_are_kept_apart() -> None:
    assert times(frame(["881250950.7", "881250951", "1e3"])) == [
        (881250950, 700000),
        (881250951, 0),
        (1000, 0),
    ]
    assert times(frame(["1970-01-01T00:00:01.5", "1969-12-31T23:59:59.25", "1970-01-01 00:01:00"])) == [
        (1, 500000),
        (-1, 250000),
        (60, 0),
    ]
    assert times(frame([5.9, -0.5], pl.Float64())) == [(5, 900000), (-1, 500000)]
    assert times(frame([0.9999999], pl.Float64())) == [(0, 999999)]  # not a whole second on
    stamp = datetime(2017, 11, 25, 10, 0, 0, 250, tzinfo=UTC)
    assert times(frame([stamp], pl.Datetime("us", "UTC"))) == [(1511604000, 250)]
    assert times(frame([5], pl.Int32())) == [(5, 0)]


def test_unix_seconds_with_a_format_without_minutes() -> None:
    parsed = seconds(frame(["2014-12-06 02", "2014-12-06 23"]), "%Y-%m-%d %H")
    assert parsed == [1417831200, 1417906800]


def test_unparsable_timestamps_name_the_first_bad_line_and_value() -> None:
    with pytest.raises(DataError, match=r"log\.csv:4: column 'x': 'soon' is not a timestamp"):
        seconds(frame(["1", "2", "soon"]))
    with pytest.raises(DataError, match=r"log\.csv:3: column 'x': '2017-13-45 10:00' is not a timestamp"):
        seconds(frame(["2017-11-25 10:00", "2017-13-45 10:00"]))
    with pytest.raises(
        DataError, match=r"log\.csv:2: column 'x': '25/11/2017' is not a timestamp.*timestamp_format"
    ):
        seconds(frame(["25/11/2017"]))
    with pytest.raises(DataError, match=r"log\.csv:2: column 'x': 'nan' is not a timestamp"):
        seconds(frame(["nan"]))
    with pytest.raises(DataError, match=r"log\.csv: timestamp_format '%Y %S' cannot be used for column 'x'"):
        seconds(frame(["2017 05"]), "%Y %S")
    with pytest.raises(
        DataError, match=r"log\.csv:3: column 'x': '2017/05' is not a timestamp in '%Y %m' \("
    ):
        seconds(frame(["2017 05", "2017/05"]), "%Y %m")


def test_tables_have_the_contract_columns() -> None:
    events = pl.DataFrame(
        {"line": [3], "value": [None], "event": ["e"], "timestamp": [1], "item": ["i"], "user": [1]}
    )
    table = columns.interactions_table(events.lazy(), PATH).collect()
    assert table.columns == list(INTERACTION_COLUMNS)
    assert table.row(0) == (1, "i", 1, 0, "e", None, "log.csv", 3)  # no microseconds given: 0
    assert table.schema["value"] == pl.Float64 and table.schema["line"] == pl.Int64

    items = columns.items_table(pl.DataFrame({"item": [1, 1, 2], "extra": ["a", "b", "c"]}))
    assert items.columns == [*ITEM_COLUMNS, "extra"]
    assert items.to_dicts() == [
        {"item": 1, "title": None, "categories": [], "extra": "a"},
        {"item": 2, "title": None, "categories": [], "extra": "c"},
    ]
    repeated = columns.items_table(pl.DataFrame({"item": [1], "categories": [["b", "a", "b"]]}))
    assert repeated["categories"].to_list() == [["b", "a"]]
