"""Readers: turn the files users have into a :class:`~intentrec.data.raw.RawLog`.

One module per family of formats; this module only picks the reader::

    movielens  MovieLens 100K (u.data), 1M/10M (ratings.dat), latest/20M-32M (ratings.csv) + metadata
    recbole    RecBole atomic files: name.inter (+ name.item)
    sequence   SASRec/S3-Rec one-line-per-user sequences: Name.txt (+ Name_item2attributes.json)
    taobao     Taobao UserBehavior.csv (headerless user,item,category,behavior,timestamp)
    table      any other CSV/TSV/Parquet with a header, or JSON Lines, described by a ColumnMapping

The format is detected from what is at the path (file names first, then the first line of the file);
``format=`` overrides detection. Every file may be compressed (``.gz``, ``.zst``).

Example
-------
>>> from intentrec.data.dataset import Dataset
>>> from intentrec.data.readers import read
>>> dataset = Dataset.from_raw(read("data/ml-100k"))  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

from intentrec.data.raw import RawLog
from intentrec.data.readers.files import existing_path, head_lines, strip_compression
from intentrec.data.readers.movielens import RATINGS_CSV_HEADER, find_ratings, read_movielens
from intentrec.data.readers.recbole import inter_files, read_recbole
from intentrec.data.readers.sequences import looks_like_sequences, read_sequences
from intentrec.data.readers.table import TABLE_SUFFIXES, ColumnMapping, read_table
from intentrec.data.readers.taobao import looks_like_taobao, read_taobao
from intentrec.errors import DataError, did_you_mean

__all__ = ["FORMATS", "ColumnMapping", "detect_format", "read"]

#: The format names ``read`` and ``detect_format`` know.
FORMATS = ("movielens", "recbole", "sequence", "taobao", "table")

#: A MovieLens ``::`` ratings line, for ratings files under another name (e.g. a prefix of ratings.dat).
_RATINGS_DAT_LINE = re.compile(r"^\d+::\d+::[\d.]+::\d+$")

#: Name suffixes (after any compression suffix) of files that may hold a log.
_DATA_SUFFIXES = (*TABLE_SUFFIXES, ".txt", ".dat", ".data", ".inter")


def detect_format(path: str | Path) -> str:
    """Name the format of the file or folder at ``path``, one of :data:`FORMATS`.

    Parameters
    ----------
    path:
        A file, or a folder: a MovieLens or RecBole folder, or one that holds a single data file.

    Returns
    -------
    str
        The format name.

    Raises
    ------
    DataError
        If the path does not exist or its format cannot be told (the message lists the formats).
    """
    path = existing_path(path)
    if path.is_dir():
        if find_ratings(path) is not None:
            return "movielens"
        if inter_files(path):
            return "recbole"
        path = _single_data_file(path)
    return _detect_file(path)


def read(
    path: str | Path, format: str | None = None, columns: ColumnMapping | dict[str, str] | None = None
) -> RawLog:
    """Read the interactions (and item metadata, where there is some) at ``path``.

    Parameters
    ----------
    path:
        A file or folder in one of :data:`FORMATS`; ``.gz`` and ``.zst`` files are decompressed on the fly.
    format:
        One of :data:`FORMATS` to skip detection. ``None`` detects it, or means ``"table"`` when
        ``columns`` is given.
    columns:
        For the ``"table"`` format: which column holds what (or a dict of the mapping's fields).

    Returns
    -------
    RawLog
        Lazy interactions in reading order, each row with its ``file`` and ``line``; items or ``None``.

    Raises
    ------
    DataError
        For anything wrong with the input, naming the file and the line or column.
    """
    path = existing_path(path)
    columns = ColumnMapping.model_validate(columns) if isinstance(columns, dict) else columns
    if format is None:
        format = "table" if columns is not None else detect_format(path)
    elif format not in FORMATS:
        raise DataError(
            f"unknown format {format!r}; expected one of {', '.join(FORMATS)}{did_you_mean(format, FORMATS)}."
        )
    if columns is not None and format != "table":
        raise DataError(f"{path}: a column mapping only applies to the 'table' format, not to {format!r}.")

    if format == "recbole":
        return read_recbole(path)
    if format == "movielens" and (path.is_file() or find_ratings(path) is not None):
        return read_movielens(path)
    file = _single_data_file(path) if path.is_dir() else path
    if format == "movielens":  # a folder holding one ratings file under another name
        return dataclasses.replace(read_movielens(file), source=str(path))
    if format == "sequence":
        raw = read_sequences(file)
    elif format == "taobao":
        raw = read_taobao(file)
    else:
        raw = read_table(file, columns)
    return dataclasses.replace(raw, source=str(path))  # the folder, when the user named one


def _detect_file(path: Path) -> str:
    name = strip_compression(path.name).lower()
    suffix = Path(name).suffix
    if name in ("u.data", "ratings.dat"):
        return "movielens"
    if suffix == ".inter":
        return "recbole"
    if suffix in (".tsv", ".parquet", ".jsonl", ".ndjson"):
        return "table"
    first = head_lines(path, 1)
    if not first:
        raise DataError(f"{path}: the file is empty.")
    line = first[0].strip()
    if suffix == ".dat" and _RATINGS_DAT_LINE.match(line):
        return "movielens"
    if suffix == ".csv":
        if looks_like_taobao(line):
            return "taobao"
        if tuple(field.strip() for field in line.split(",")) == RATINGS_CSV_HEADER:
            return "movielens"
        return "table"
    if suffix == ".txt" and looks_like_sequences(line):
        return "sequence"
    if suffix == ".json" and line.startswith("{"):  # JSON Lines, as Amazon's review dumps
        return "table"
    raise DataError(
        f"{path}: cannot tell the format from the name and first line ({line[:60]!r}); "
        f"give the format (--format, or format= in Python), one of {', '.join(FORMATS)}."
    )


def _single_data_file(folder: Path) -> Path:
    """The one file in ``folder`` that can hold a log (README files aside), or a DataError listing them."""
    candidates = sorted(
        child
        for child in folder.iterdir()
        if child.is_file()
        and Path(strip_compression(child.name)).suffix.lower() in _DATA_SUFFIXES
        and not child.name.lower().startswith("readme")
    )
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise DataError(
            f"{folder}: no data file here (looked for {', '.join(_DATA_SUFFIXES)}, possibly .gz or .zst)."
        )
    names = ", ".join(child.name for child in candidates)
    raise DataError(f"{folder}: several data files ({names}); pass the one to read.")
