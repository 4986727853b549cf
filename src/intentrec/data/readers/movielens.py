"""MovieLens, in the three layouts GroupLens has published (Harper & Konstan, ACM TiiS 2015).

=================  ===============================  ===================================  =============
release            ratings                          items                                tags
=================  ===============================  ===================================  =============
100K               ``u.data``: tab-separated        ``u.item``: ``|``-separated, latin-1, none
                   user, item, rating, timestamp    19 genre flags named by ``u.genre``
1M, 10M            ``ratings.dat``: ``::``-sep.     ``movies.dat``: id::title::genres    ``tags.dat``
                                                    (``|``-separated; 1M is latin-1)     (10M)
latest, 20M-32M    ``ratings.csv`` with header      ``movies.csv``: movieId,title,genres ``tags.csv``
=================  ===============================  ===================================  =============

Ratings become ``"rating"`` events whose value is the rating; tag applications become ``"tag"`` events
with no value (the tag text is not kept). IDs are integers, timestamps unix seconds.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from intentrec.data.raw import RawLog
from intentrec.data.readers.columns import (
    checked_cast,
    interactions_table,
    items_table,
    require_columns,
    run_checks,
    split_categories,
)
from intentrec.data.readers.files import (
    csv_header,
    find_file,
    first_invalid_utf8,
    read_csv,
    read_lines,
    scan_csv,
    scan_lines,
    scannable,
    split_fields,
    strip_compression,
)
from intentrec.errors import DataError

#: Ratings file names, in the order they are looked for in a folder.
RATINGS_FILES = ("u.data", "ratings.dat", "ratings.csv")

#: Header of the CSV releases' ratings file (also used to recognise a renamed one).
RATINGS_CSV_HEADER = ("userId", "movieId", "rating", "timestamp")

#: The 100K genre flags in file order, used when ``u.genre`` is not next to ``u.item``.
GENRES_100K = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)  # fmt: skip

#: How the CSV releases mark a movie without genres.
NO_GENRES = "(no genres listed)"


def find_ratings(folder: Path) -> Path | None:
    """The MovieLens ratings file in ``folder`` (plain or compressed), or ``None``."""
    for name in RATINGS_FILES:
        found = find_file(folder, name)
        if found is not None:
            return found
    return None


def read_movielens(path: Path) -> RawLog:
    """Read a MovieLens folder, or its ratings file together with the metadata files next to it.

    Parameters
    ----------
    path:
        A folder holding ``u.data``, ``ratings.dat`` or ``ratings.csv`` (each possibly ``.gz``/``.zst``),
        or that file itself. ``u.item``/``movies.dat``/``movies.csv`` and ``tags.dat``/``tags.csv`` are
        read from the same folder when present.

    Returns
    -------
    RawLog
        ``"rating"`` events (value = rating), then ``"tag"`` events if there is a tags file; items with
        title and genres when the items file is present.
    """
    ratings_path = path if path.is_file() else find_ratings(path)
    if ratings_path is None:
        raise DataError(f"{path}: no MovieLens ratings file here (looked for {', '.join(RATINGS_FILES)}).")
    folder = ratings_path.parent
    name = strip_compression(ratings_path.name)

    if name.endswith(".data"):
        frames = [_ratings_split(ratings_path, scannable(ratings_path), "\t")]
        items_path = find_file(folder, "u.item")
        items = _items_100k(items_path, find_file(folder, "u.genre")) if items_path else None
    elif name.endswith(".dat"):
        frames = [_ratings_split(ratings_path, scannable(ratings_path), "::")]
        tags_path = find_file(folder, "tags.dat")
        frames += [_tags_dat(tags_path, scannable(tags_path))] if tags_path else []
        items_path = find_file(folder, "movies.dat")
        items = _items_dat(items_path) if items_path else None
    elif name.endswith(".csv"):
        frames = [_ratings_csv(ratings_path, scannable(ratings_path))]
        tags_path = find_file(folder, "tags.csv")
        frames += [_tags_csv(tags_path, scannable(tags_path))] if tags_path else []
        items_path = find_file(folder, "movies.csv")
        items = _items_csv(items_path) if items_path else None
    else:
        raise DataError(
            f"{ratings_path}: not a MovieLens ratings file (expected one of {', '.join(RATINGS_FILES)})."
        )
    return RawLog(
        interactions=pl.concat(frames),
        items=items,
        source=str(path),
        format="movielens",
    )


# --- interactions -------------------------------------------------------------------------------------------


#: Field names for the headerless files, in file order.
_RATING_FIELDS = ("user", "item", "rating", "timestamp")
_TAG_FIELDS = ("user", "item", "tag", "timestamp")


def _ratings_split(path: Path, plain: Path, separator: str) -> pl.LazyFrame:
    """``u.data`` (tab) or ``ratings.dat`` (``::``): user, item, rating, timestamp without header."""
    fields = split_fields(scan_lines(plain, path), path, separator, list(_RATING_FIELDS))
    return _events(fields, path, "rating", _RATING_FIELDS)


def _ratings_csv(path: Path, plain: Path) -> pl.LazyFrame:
    require_columns(csv_header(path, ","), RATINGS_CSV_HEADER, path)
    table = scan_csv(plain, path, ",", columns=list(RATINGS_CSV_HEADER))
    return _events(table, path, "rating", RATINGS_CSV_HEADER)


def _tags_dat(path: Path, plain: Path) -> pl.LazyFrame:
    fields = split_fields(scan_lines(plain, path), path, "::", list(_TAG_FIELDS))
    return _events(fields, path, "tag", _TAG_FIELDS)


def _tags_csv(path: Path, plain: Path) -> pl.LazyFrame:
    names = ("userId", "movieId", "tag", "timestamp")
    require_columns(csv_header(path, ","), names, path)
    return _events(scan_csv(plain, path, ",", columns=[names[0], names[1], names[3]]), path, "tag", names)


def _events(table: pl.LazyFrame, path: Path, event: str, names: tuple[str, ...]) -> pl.LazyFrame:
    """Events from a table whose user, item, rating-or-tag and timestamp columns are ``names``.

    Ratings keep their value; tags get none (the tag text is not an interaction value).
    """
    user, item, rating, timestamp = names
    conversions = {
        "user": checked_cast(user, pl.Int64(), "an integer user ID"),
        "item": checked_cast(item, pl.Int64(), "an integer movie ID"),
        "timestamp": checked_cast(timestamp, pl.Int64(), "integer unix seconds"),
    }
    if event == "rating":
        conversions["value"] = checked_cast(rating, pl.Float64(), "a number (the rating)")
    run_checks(table, path, [check for _, check in conversions.values()])
    value = conversions["value"][0] if event == "rating" else pl.lit(None, dtype=pl.Float64)
    frame = table.select(
        *(expression.alias(name) for name, (expression, _) in conversions.items() if name != "value"),
        value.alias("value"),
        pl.lit(event).alias("event"),
        "line",
    )
    return interactions_table(frame, path)


# --- items --------------------------------------------------------------------------------------------------


def _items_100k(path: Path, genre_path: Path | None) -> pl.DataFrame:
    """``u.item``: id | title | release date | video release date | IMDb URL | 19 genre flags (latin-1)."""
    genres = _genre_names(genre_path) if genre_path else list(GENRES_100K)
    flags = [f"genre_{index}" for index in range(len(genres))]
    names = ["item", "title", "release_date", "video_release_date", "imdb_url", *flags]
    # latin-1 by specification (README): decoding as UTF-8 would fail on titles such as "Misérables".
    fields = _split_small_file(path, "|", names, encoding="latin-1")
    categories = pl.concat_list(
        pl.when(pl.col(flag) == "1").then(pl.lit(genre)).otherwise(pl.lit(None, dtype=pl.String))
        for flag, genre in zip(flags, genres, strict=True)
    ).list.drop_nulls()
    return _items(fields, path, "item", pl.col("title"), categories)


def _genre_names(path: Path) -> list[str]:
    """``u.genre``: ``name|index`` lines, returned in index order."""
    fields = _split_small_file(path, "|", ["name", "index"], encoding="latin-1")
    index, check = checked_cast("index", pl.Int64(), "an integer genre index")
    run_checks(fields.lazy(), path, [check])
    return fields.with_columns(index).sort("index")["name"].to_list()


def _items_dat(path: Path) -> pl.DataFrame:
    """``movies.dat``: ``id::title::genres``; 1M is latin-1 and 10M UTF-8 under the same name."""
    encoding = "utf-8" if first_invalid_utf8(path) is None else "latin-1"
    fields = _split_small_file(path, "::", ["item", "title", "genres"], encoding=encoding)
    return _items(fields, path, "item", pl.col("title"), _genres("genres"))


def _items_csv(path: Path) -> pl.DataFrame:
    wanted = ["movieId", "title", "genres"]
    require_columns(csv_header(path, ","), wanted, path)
    return _items(read_csv(path, ",", columns=wanted), path, "movieId", pl.col("title"), _genres("genres"))


def _split_small_file(path: Path, separator: str, names: list[str], encoding: str) -> pl.DataFrame:
    return split_fields(read_lines(path, encoding=encoding).lazy(), path, separator, names).collect()


def _genres(column: str) -> pl.Expr:
    return split_categories(pl.col(column), "|", [NO_GENRES])


def _items(table: pl.DataFrame, path: Path, item: str, title: pl.Expr, categories: pl.Expr) -> pl.DataFrame:
    movie_id, check = checked_cast(item, pl.Int64(), "an integer movie ID")
    run_checks(table.lazy(), path, [check])
    return items_table(
        table.select(movie_id.alias("item"), title.alias("title"), categories.alias("categories"))
    )
