"""Recommendations for many users at once, streamed to a file: ``intentrec recommend RUN --out FILE``.

Users are ranked a block at a time by :meth:`Recommender.recommend` (exact full ranking, as the evaluator
ranks) and each block is appended to the file (a Parquet row group, or CSV rows), so memory stays flat
however many users there are. The file is Parquet, or CSV when its name ends in ``.csv``. It appears
complete or not at all: it is written next to its place and moved there at the end.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from intentrec.catalogue import Catalogue, UnknownIdError, as_list
from intentrec.errors import ConfigError
from intentrec.models.heads import Steering
from intentrec.recommender import Recommender
from intentrec.storage import atomic_path, check_file_target, read_text

log = logging.getLogger(__name__)


def recommendations_file(out: str | Path) -> Path:
    """``out`` as a Path if recommendations can be written there (a .parquet or .csv file name where a
    file can be made); a ConfigError naming ``--out`` otherwise."""
    out = check_file_target(out)
    if out.suffix.lower() not in (".parquet", ".csv"):
        raise ConfigError(f"--out {out}: expected a .parquet or .csv file name.")
    return out


def write_recommendations(
    recommender: Recommender,
    out: str | Path,
    users: Sequence[Any] | None = None,
    k: int = 100,
    filter_seen: bool = True,
    include_categories: Sequence[str] | None = None,
    exclude_categories: Sequence[str] | None = None,
    steering: Steering | dict[str, Any] | None = None,
    block_size: int = 4096,
    on_block: Callable[[int], None] | None = None,
    at: int | None = None,
) -> int:
    """Write ``user, rank, item, score, head`` for ``users`` (raw IDs; None = every user) to ``out``:
    Parquet (``.parquet``) or CSV (``.csv``).

    Rows are in the order of ``users``, ranks ascending; the filters and steering are those of
    :meth:`Recommender.recommend`, all asked for at ``at`` (default: now, once for the whole file).
    ``on_block(n)`` is called after each block of ``n`` users (a progress bar). Returns the number of
    rows written.
    """
    out = recommendations_file(out)
    users = recommender.catalogue.user_ids if users is None else as_list(users)
    recommender.catalogue.require_users(users)  # an unknown ID fails before anything is computed
    at = at if at is not None else recommender.catalogue.asked_now()  # one time for the whole file
    options = dict(
        filter_seen=filter_seen,
        include_categories=include_categories,
        exclude_categories=exclude_categories,
        steering=steering,
        at=at,
    )
    # an empty ranking gives the file's schema (so that even a file for no user has every column), and
    # checks every option before anything is ranked or written
    schema = recommender.recommend([], k, **options).to_arrow().schema
    if out.exists() and not _holds_recommendations(out, schema.names):  # a typo must not cost a file
        raise ConfigError(
            f"--out {out}: the file exists and holds no recommendations written by IntentRec; "
            "give another name, or delete it first."
        )
    written = 0
    with atomic_path(out) as tmp, _writer(tmp, schema, as_csv=out.suffix.lower() == ".csv") as writer:
        for start in range(0, len(users), block_size):
            block = users[start : start + block_size]
            table = recommender.recommend(block, k, **options).to_arrow()
            writer.write_table(table)
            written += table.num_rows
            if on_block is not None:
                on_block(len(block))
    return written


def _holds_recommendations(path: Path, columns: list[str]) -> bool:
    """Whether ``path`` is a table with exactly the columns :func:`write_recommendations` writes."""
    try:
        if path.suffix.lower() == ".csv":
            with path.open(encoding="utf-8", newline="") as file:
                return next(csv.reader(file), None) == columns
        return pq.read_schema(path).names == columns
    except (OSError, UnicodeDecodeError, pa.ArrowException, csv.Error):
        return False


def _writer(path: Path, schema: pa.Schema, as_csv: bool) -> pq.ParquetWriter | pa_csv.CSVWriter:
    return pa_csv.CSVWriter(path, schema) if as_csv else pq.ParquetWriter(path, schema)


def read_user_ids(path: str | Path, catalogue: Catalogue) -> list[str]:
    """The users of ``catalogue`` a text file names, one per line (surrounding spaces and empty lines
    ignored), each once in the order first named; an unknown ID is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        found = "that is a folder" if path.is_dir() else "no such file"
        raise ConfigError(f"--users {path}: {found}; give 'all' or a file with one user ID per line.")
    try:
        lines = read_text(path, "utf-8-sig", ConfigError).splitlines()  # a BOM is not part of the first ID
    except ConfigError as error:
        raise ConfigError(f"--users {error}") from None
    named = [(number, line.strip()) for number, line in enumerate(lines, 1) if line.strip()]
    if not named:
        raise ConfigError(f"--users {path}: the file has no user IDs; give one per line.")
    indexed = [(number, user, catalogue.user_index(user)) for number, user in named]
    unknown = [(number, user) for number, user, index in indexed if index is None]
    if unknown:
        (number, user), more = unknown[0], len(unknown) - 1
        raise UnknownIdError(
            f"--users {path}:{number}: unknown user id {user!r}{f' (and {more} more)' * bool(more)}: "
            f"not in the dataset this model was trained on ({catalogue.n_users} users)."
        )
    # by the user, not the text: with integer IDs "7" and "07" name one user
    first: dict[int | None, tuple[int, str]] = {}
    for number, user, index in indexed:
        first.setdefault(index, (number, user))
    if len(first) < len(named):
        repeated = next(number for number, _, index in indexed if first[index][0] != number)
        log.warning(
            "--users %s: %d line(s) repeat a user named before (the first on line %d): "
            "each user is recommended for once",
            path,
            len(named) - len(first),
            repeated,
        )
    return [user for _, user in first.values()]
