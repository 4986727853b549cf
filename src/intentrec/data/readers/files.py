"""File helpers shared by the readers: paths, transparent decompression, sniffing, UTF-8 checks, line tables.

Every reader goes through these functions, so every format gets the same behaviour for free:

* Logs are scanned lazily (polars ``scan_csv``/``scan_parquet``) and collected with the streaming engine,
  so a log larger than memory is read in bounded memory; only the columns a reader asks for are kept.
* ``.gz`` and ``.zst`` files are accepted wherever a plain file is. A compressed file is decompressed by
  streaming it to a temporary file (never into a Python string), which polars then scans natively.
* Every table comes back with a ``line`` column: the 1-based line of the row in its file, header counted,
  so that any later error can say ``file:line``. Blank lines are skipped but still counted.
* Polars' own reading errors (invalid UTF-8, ragged rows, empty files) become :class:`DataError` messages
  that name the file and, where it can be found, the line.

Paths are kept as the user gave them (relative stays relative), because they end up in messages.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import io
import re
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, NoReturn

import polars as pl
import zstandard

from intentrec.errors import DataError, did_you_mean

#: Compression suffixes read transparently, wherever a plain file is accepted.
COMPRESSIONS = (".gz", ".zst")

#: Bytes copied per step when decompressing or scanning a file; bounds the memory these helpers use.
_CHUNK = 1 << 22

#: Internal name of the row-number column while a table is read (a user's file may have a "line" column).
_LINE = "__line__"


# --- paths --------------------------------------------------------------------------------------------------


def existing_path(path: str | Path) -> Path:
    """Return ``path`` as a :class:`Path`, or raise a DataError suggesting a near name in its folder."""
    path = Path(path)
    if path.exists():
        return path
    folder = path.parent
    siblings = [child.name for child in folder.iterdir()] if folder.is_dir() else []
    where = "" if folder.is_dir() else f" (the folder {str(folder)!r} does not exist either)"
    raise DataError(f"{path}: no such file or folder{where}{did_you_mean(path.name, siblings)}.")


def strip_compression(name: str) -> str:
    """``"u.data.gz"`` -> ``"u.data"``; names without a compression suffix are returned unchanged."""
    for suffix in COMPRESSIONS:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def find_file(folder: Path, name: str) -> Path | None:
    """The file ``name`` in ``folder``, plain or compressed (``name.gz``, ``name.zst``), or ``None``."""
    for candidate in (name, *(name + suffix for suffix in COMPRESSIONS)):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


# --- raw bytes ----------------------------------------------------------------------------------------------


@contextmanager
def open_binary(path: Path) -> Iterator[IO[bytes]]:
    """Open ``path`` for reading bytes, decompressing ``.gz`` and ``.zst`` on the fly."""
    if path.name.endswith(".gz"):
        with gzip.open(path, "rb") as stream:
            yield stream
    elif path.name.endswith(".zst"):
        with open(path, "rb") as raw, io.BufferedReader(_ZstdFrames(raw), _CHUNK) as stream:
            yield stream
    else:
        with open(path, "rb") as stream:
            yield stream


class _ZstdFrames(io.RawIOBase):
    """The decompressed bytes of the zstd frames of ``raw``, one after another; an EOFError where the file
    ends inside a frame, as gzip raises for a cut ``.gz`` (zstandard's stream_reader returns the part
    it has as if it were the whole)."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw, self.decompressor = raw, zstandard.ZstdDecompressor()
        self.frame = self.decompressor.decompressobj()
        self.in_frame = False  # fed part of a frame whose end is not read yet
        self.pending = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        while not self.pending:
            compressed = self.raw.read(_CHUNK)
            if not compressed:
                if self.in_frame:
                    raise EOFError("compressed file ended before the end of its last frame")
                return 0
            self.pending = memoryview(self._decompress(compressed))
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size

    def _decompress(self, compressed: bytes) -> bytes:
        parts = []
        while compressed:
            self.in_frame = True
            parts.append(self.frame.decompress(compressed))
            compressed = b""
            if self.frame.eof:  # the next frame, if any, starts in what this one left
                compressed, self.in_frame = self.frame.unused_data, False
                self.frame = self.decompressor.decompressobj()
        return b"".join(parts)


def scannable(path: Path) -> Path:
    """A path polars can scan lazily: ``path`` itself, or a decompressed copy of it.

    Copies live in one temporary folder per process, removed when the process exits, because a lazy scan
    may run long after the reader returned. The same file (same size and modification time) is
    decompressed once per process.
    """
    if strip_compression(path.name) == path.name:
        return path
    stat = path.stat()
    return _decompressed_copy(path.resolve(), stat.st_size, stat.st_mtime_ns)


@contextmanager
def plain_file(path: Path) -> Iterator[Path]:
    """A path polars can read now: ``path`` itself, or a temporary decompressed copy removed afterwards."""
    if strip_compression(path.name) == path.name:
        yield path
        return
    with tempfile.TemporaryDirectory(prefix="intentrec-") as folder:
        target = Path(folder) / strip_compression(path.name)
        _decompress(path, target)
        yield target


@functools.cache
def _decompressed_copy(path: Path, size: int, modified_ns: int) -> Path:
    # size and modified_ns are part of the cache key: a file changed since is decompressed again; the
    # copy is named after the whole path, so files of one name in two folders never share a copy
    where = hashlib.blake2b(str(path).encode(), digest_size=8).hexdigest()
    target = Path(_copies_folder().name) / f"{where}-{modified_ns}-{size}-{strip_compression(path.name)}"
    _decompress(path, target)
    return target


@functools.cache
def _copies_folder() -> tempfile.TemporaryDirectory[str]:
    return tempfile.TemporaryDirectory(prefix="intentrec-")  # removed at exit by its finalizer


def _decompress(path: Path, target: Path) -> None:
    """Stream ``path`` decompressed into ``target`` in fixed-size chunks (never whole in memory)."""
    try:
        with open(target, "wb") as plain, open_binary(path) as source:
            shutil.copyfileobj(source, plain, _CHUNK)
    except (OSError, EOFError, zstandard.ZstdError) as error:
        target.unlink(missing_ok=True)
        raise DataError(f"{path}: cannot decompress the file ({error}).") from None


def read_bytes(path: Path) -> bytes:
    """The whole decompressed content of a small file (item metadata, JSON): never use it for logs."""
    try:
        with open_binary(path) as stream:
            return stream.read()
    except (OSError, EOFError, zstandard.ZstdError) as error:
        raise DataError(f"{path}: cannot decompress the file ({error}).") from None


def head_bytes(path: Path, size: int = 1 << 16) -> bytes:
    """The first ``size`` decompressed bytes of a file, without decompressing the rest."""
    try:
        with open_binary(path) as stream:
            return stream.read(size)
    except (OSError, EOFError, zstandard.ZstdError) as error:
        raise DataError(f"{path}: cannot decompress the file ({error}).") from None


def head_lines(path: Path, n_lines: int = 5) -> list[str]:
    """The first few non-blank lines of a file, for sniffing its format; undecodable bytes are replaced."""
    lines = head_bytes(path).decode("utf-8", errors="replace").lstrip("\ufeff").splitlines()
    return [line for line in lines if line.strip()][:n_lines]


def first_invalid_utf8(path: Path) -> tuple[int, bytes] | None:
    """Line number and bytes of the first invalid UTF-8 sequence in a file, or ``None`` if it is valid.

    Scans in chunks; a multi-byte character cut by a chunk boundary is carried over to the next chunk.
    """
    line = 1
    carry = b""
    with open_binary(path) as stream:
        while chunk := stream.read(_CHUNK):
            data = carry + chunk
            try:
                data.decode("utf-8")
                valid, carry = data, b""
            except UnicodeDecodeError as error:
                cut_at_end = error.reason == "unexpected end of data" and error.end == len(data)
                if not cut_at_end:
                    return line + data.count(b"\n", 0, error.start), data[error.start : error.end]
                valid, carry = data[: error.start], data[error.start :]
            line += valid.count(b"\n")
    return (line, carry) if carry else None


# --- tables -------------------------------------------------------------------------------------------------


def collect(frame: pl.LazyFrame, path: Path) -> pl.DataFrame:
    """Run a lazy query over the file ``path`` with polars' streaming engine.

    Polars' reading errors become DataErrors naming the file, and the line where it can be found (invalid
    UTF-8, a row with more fields than the header).
    """
    try:
        return frame.collect(engine="streaming")
    except pl.exceptions.ComputeError as error:
        if "utf" in str(error).lower():
            line, bad = first_invalid_utf8(path) or (None, b"")
            if line is not None:
                raise DataError(
                    f"{path}:{line}: the bytes {bad!r} are not valid UTF-8; save the file as UTF-8."
                ) from None
        if "more fields" in str(error):
            _raise_ragged_line(path)
        _raise_bad_quoting(path, error)
        raise DataError(f"{path}: cannot read the file: {_first_line(error)}") from None
    except pl.exceptions.NoDataError:
        raise DataError(f"{path}: the file is empty.") from None


def scan_lines(source: Path | bytes, path: Path) -> pl.LazyFrame:
    """The non-blank lines of a text file, lazily: ``line`` (Int64, 1-based) and ``text`` (String).

    ``source`` is what polars scans (:func:`scannable`'s path, or UTF-8 bytes); ``path`` names the file in
    messages. Raises a DataError when the file is empty or blank.
    """
    _require_content(source, path)
    # One column per line: \x1f (ASCII "unit separator") never occurs in text data, and no quoting.
    lines = pl.scan_csv(
        source,
        has_header=False,
        separator="\x1f",
        quote_char=None,
        new_columns=["text"],
        schema_overrides={"text": pl.String},
        infer_schema=False,
        row_index_name="line",
        row_index_offset=1,
    )
    lines = lines.with_columns(pl.col("line").cast(pl.Int64), pl.col("text").str.strip_suffix("\r"))
    lines = lines.filter(pl.col("text").str.strip_chars() != "")
    if collect(lines.head(1), path).height == 0:
        raise DataError(f"{path}: the file has no data (only blank lines).")
    return lines


def read_lines(path: Path, encoding: str = "utf-8") -> pl.DataFrame:
    """:func:`scan_lines` of a small file, collected; other encodings (MovieLens' latin-1 item files) are
    decoded in memory."""
    with plain_file(path) as plain:
        source: Path | bytes = plain
        if encoding.lower().replace("-", "") not in ("utf8", "utf8sig"):
            source = plain.read_bytes().decode(encoding).encode("utf-8")
        return collect(scan_lines(source, path), path)


def split_fields(lines: pl.LazyFrame, path: Path, separator: str, names: list[str]) -> pl.LazyFrame:
    """Split :func:`scan_lines` into String columns ``names``; every line must have exactly that many.

    Used for headerless formats (``u.data``, ``ratings.dat``, Taobao), where a wrong field count is the
    usual sign of a wrong file or a wrong format. Checking the counts is one streaming pass over the file.
    """
    fields = lines.select("line", pl.col("text").str.split(separator).alias("fields"))
    bad = collect(fields.filter(pl.col("fields").list.len() != len(names)).head(1), path)
    if bad.height:
        line, found = bad.row(0)
        shown = "tab" if separator == "\t" else repr(separator)
        raise DataError(
            f"{path}:{line}: expected {len(names)} {shown}-separated fields ({', '.join(names)}), "
            f"found {len(found)}: {_shorten(separator.join(found))!r}."
        )
    return fields.select(
        "line",
        *(pl.col("fields").list.get(index).str.strip_chars().alias(name) for index, name in enumerate(names)),
    )


def sniff_separator(header: str) -> str:
    """The most frequent of comma, tab, semicolon and pipe in a header line (comma when none occurs)."""
    counts = {separator: header.count(separator) for separator in (",", "\t", ";", "|")}
    best = max(counts, key=lambda separator: counts[separator])
    return best if counts[best] else ","


def csv_header(path: Path, separator: str, quote_char: str | None = '"') -> list[str]:
    """The column names of a CSV file with a header row, read from the head of the file only."""
    head = head_bytes(path)
    if not head.strip():
        raise DataError(f"{path}: the file is empty.")
    for magic, suffix in ((b"\x1f\x8b", ".gz"), (b"\x28\xb5\x2f\xfd", ".zst")):
        if head.startswith(magic) and not path.name.endswith(suffix):
            raise DataError(f"{path}: the file is compressed ({suffix}); name it {path.name}{suffix}.")
    header = head.split(b"\n", 1)[0]
    try:
        header.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = header[error.start : error.end]
        raise DataError(f"{path}:1: the bytes {bad!r} are not valid UTF-8; save the file as UTF-8.") from None
    try:
        header_only = pl.read_csv(
            header, separator=separator, quote_char=quote_char, n_rows=0, infer_schema=False
        )
    except pl.exceptions.PolarsError as error:
        raise DataError(f"{path}:1: cannot read the header row: {_first_line(error)}") from None
    # "user_id, item_id" (a blank after each comma) names its columns without the blanks
    names = [name.strip() or name for name in header_only.columns]  # a blank name is left as polars has it
    for name in names:
        # polars renames a repeated name "x" to "x_duplicated_0", "x_duplicated_1", ...
        base, marker, number = name.rpartition("_duplicated_")
        repeated = base if marker and number.isdigit() and base in names else name
        if repeated != name or names.count(name) > 1:
            raise DataError(
                f"{path}:1: the column '{repeated}' appears twice in the header; name each column once."
            )
    return names


def scan_csv(
    source: Path,
    path: Path,
    separator: str,
    columns: list[str] | None = None,
    quote_char: str | None = '"',
) -> pl.LazyFrame:
    """A CSV file with a header row, lazily: ``line`` (Int64; the header is line 1), then every column of
    ``columns`` (default: all) as String.

    ``source`` is what polars scans (:func:`scannable`'s path); ``path`` names the file in messages. Values
    are stripped of surrounding blanks, and those left empty are null; rows that are entirely empty (blank
    lines) are dropped. A field quoted across several lines shifts the line numbers of the rows after it:
    real logs do not do that, and the numbers only serve messages.
    """
    _require_content(source, path)
    table = pl.scan_csv(
        source,
        separator=separator,
        quote_char=quote_char,
        infer_schema=False,
        row_index_name=_LINE,
        row_index_offset=2,
    )
    table = table.rename(lambda name: name.strip() or name)  # as csv_header names them
    every = [name for name in table.collect_schema().names() if name != _LINE]
    names = columns or every
    # empty in every column of the file, not only in those read: a row with text elsewhere is no blank line
    table = table.filter(~pl.all_horizontal(pl.col(name).is_null() for name in every))
    stripped = (pl.col(name).str.strip_chars() for name in names)
    # blank ("  ") or quoted empty ('""') is a missing value, as an empty field is: never an ID ""
    table = table.select(
        pl.col(_LINE).cast(pl.Int64).alias("line"),
        *(pl.when(value != "").then(value).name.keep() for value in stripped),
    )
    if collect(table.head(1), path).height == 0:
        raise DataError(f"{path}: the file has a header (line 1) but no data rows.")
    return table


def read_csv(
    path: Path, separator: str, columns: list[str] | None = None, quote_char: str | None = '"'
) -> pl.DataFrame:
    """:func:`scan_csv` of a small file (item metadata), collected."""
    with plain_file(path) as plain:
        return collect(scan_csv(plain, path, separator, columns, quote_char), path)


def _require_content(source: Path | bytes, path: Path) -> None:
    size = len(source) if isinstance(source, bytes) else source.stat().st_size
    if size == 0:
        raise DataError(f"{path}: the file is empty.")


def _raise_ragged_line(path: Path) -> NoReturn:
    """Name the first line with more fields than the header. Quotes are read as polars reads them (a
    separator inside quotes is no field); this runs row by row, but only once polars has failed."""
    header = head_lines(path, 1)[0]
    separator = "\t" if "\t" in header else sniff_separator(header)
    where = ""
    with plain_file(path) as plain, open(plain, newline="", encoding="utf-8", errors="replace") as text:
        rows = csv.reader(text, delimiter=separator)
        width, start = len(next(rows)), 2
        for row in rows:
            if len(row) > width:
                where = f":{start}"
                break
            start = rows.line_num + 1  # a quoted field may span lines: the next row starts after them
    raise DataError(
        f"{path}{where}: a row has more fields than the header (line 1) names; "
        f"check the separator ({separator!r}) and the quoting."
    )


def _raise_bad_quoting(path: Path, error: Exception) -> None:
    """Name the line of the text polars could not parse (its message quotes it) when that text holds a
    quote: a quote left open, or text after a closing one. Return when it does not."""
    unparsed = re.search(r"could not parse `([^`\n]*)", str(error))
    if unparsed is None or '"' not in unparsed.group(1):
        return
    with plain_file(path) as plain:
        lines = scan_lines(plain, path).filter(pl.col("text").str.contains(unparsed.group(1), literal=True))
        found = collect(lines.head(1), path)
    if found.height:
        line, text = found.row(0)
        raise DataError(
            f"{path}:{line}: a quoted field is left open, or text follows its closing quote: "
            f'{_shorten(text)!r}. A field with the separator or a quote in it is written "...", '
            'with each quote inside doubled ("").'
        )


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _shorten(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
