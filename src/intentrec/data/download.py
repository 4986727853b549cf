"""Public datasets by name: fetched once into a local cache and checked against known md5 checksums.

``fetch("beauty")`` returns a local folder that the readers can open: a MovieLens folder (``u.data`` ...,
``ratings.dat`` ... or ``ratings.csv.gz`` ...) or a sequence folder (``Beauty.txt`` plus
``Beauty_item2attributes.json``). The first call downloads; later calls find the verified copy in the cache
(``$INTENTREC_CACHE`` or ``~/.cache/intentrec``, one sub-folder per dataset) and touch no network.

MovieLens latest-small is shipped inside the package (its licence allows redistribution with its README),
so it never needs a download.

Trust: every md5 in :data:`DATASETS` was computed from a real copy of that file, never copied from a web
page. We hold no verified copy of the GroupLens zips themselves, so a zip is checked through the files
inside it, after extraction. A file whose md5 is ``None`` has no verified copy yet and is only checked for
presence (and, when downloaded directly, for the full length announced by the server).

Each dataset folder is written with :func:`intentrec.storage.atomic_directory`, so the cache holds either a
complete, verified copy or nothing: a failed download or a checksum mismatch leaves no trace.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.resources
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from urllib.parse import urlsplit, urlunsplit

from filelock import FileLock

from intentrec.errors import DataError, did_you_mean
from intentrec.storage import atomic_directory, unwritable

# Long enough for a slow mirror to answer, short enough that an offline machine fails within a minute.
_TIMEOUT_S = 30
_CHUNK = 1 << 16


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset, under the name the readers expect."""

    name: str
    #: md5 of the file as the readers use it (uncompressed, after extraction); ``None`` if unverified.
    md5: str | None
    #: Where to download this file; ``None`` when it comes out of the dataset's archive.
    url: str | None = None


@dataclass(frozen=True)
class Archive:
    """A zip that holds a whole dataset."""

    url: str
    #: Folder inside the zip whose contents become the dataset folder.
    folder: str


@dataclass(frozen=True)
class DatasetSource:
    """Where a public dataset comes from and how to check it."""

    name: str
    description: str
    files: tuple[DataFile, ...]
    archive: Archive | None = None
    #: Shipped inside the package: :func:`fetch` returns the packaged folder and never downloads.
    builtin: bool = False


_GROUPLENS = "https://files.grouplens.org/datasets/movielens"
# S3-Rec's preprocessed benchmark files, pinned to a commit so the content (and md5) cannot drift.
_S3REC = (
    "https://raw.githubusercontent.com/aHuiWang/CIKM2020-S3Rec/49a890dcb516c9ed3126564495234ea74d5cd566/data"
)


def _sequence_files(stem: str, sequences_md5: str, attributes_md5: str) -> tuple[DataFile, ...]:
    return (
        DataFile(f"{stem}.txt", sequences_md5, f"{_S3REC}/{stem}.txt"),
        DataFile(f"{stem}_item2attributes.json", attributes_md5, f"{_S3REC}/{stem}_item2attributes.json"),
    )


_SOURCES = (
    DatasetSource(
        "ml-100k",
        "MovieLens 100K: 100,000 ratings 1-5 with timestamps (GroupLens, research use, no redistribution)",
        files=(
            DataFile("u.data", "6e47046882bad158b0efbb84cd5cb987"),
            DataFile("u.item", "c9e7f390115d79079537301d5204f3f7"),
            DataFile("u.user", "1b53539edc13caad0282c8500608a319"),
            DataFile("u.genre", "a7578bdb37758741ae9429d2c736af18"),
            DataFile("u.occupation", "035abaa2165f35cebce4b91e03481e0a"),
            DataFile("u.info", "6cae0afd8c0341aff31b631a192e57e6"),
            DataFile("README", "f4e4022f1dd5a096d13598805f26c7ca"),
        ),
        archive=Archive(f"{_GROUPLENS}/ml-100k.zip", folder="ml-100k"),
    ),
    DatasetSource(
        "ml-1m",
        "MovieLens 1M: 1,000,209 ratings 1-5 with timestamps (GroupLens, research use, no redistribution)",
        files=(
            # No verified copy of the full ratings.dat exists yet, so it is only checked for presence.
            DataFile("ratings.dat", None),
            DataFile("movies.dat", "ef9fd9ff8d1b33faf73e2122c371e910"),
            DataFile("users.dat", "681c0711d0d4548cd3d4718a49c2dcd8"),
            DataFile("README", "6a3f626147ec67b732a69beccae0aaa8"),
        ),
        archive=Archive(f"{_GROUPLENS}/ml-1m.zip", folder="ml-1m"),
    ),
    DatasetSource(
        "ml-latest-small",
        "MovieLens latest-small (2018): 100,836 ratings and 3,683 tags; shipped with IntentRec",
        # The md5s are those of the packaged copy. The official zip stores CRLF line ends and an
        # uncompressed ratings.csv, so its files would not match them; that is why it is never downloaded.
        files=(
            DataFile("ratings.csv.gz", "4758d289bd1b00fe676e1a1d8e834f5e"),
            DataFile("movies.csv", "b252328d16b085936b56eefad880ef9d"),
            DataFile("tags.csv", "5d095828cb668ec2fae1e2cf0d99c671"),
            DataFile("links.csv", "bc5292d5185e8c5fd8dc9a83fb2198d2"),
            DataFile("README.txt", "9bc20a696092024abe52696ee6c5837f"),
        ),
        archive=Archive(f"{_GROUPLENS}/ml-latest-small.zip", folder="ml-latest-small"),
        builtin=True,
    ),
    DatasetSource(
        "beauty",
        "Amazon Beauty 5-core as preprocessed by S3-Rec: 22,363 users, 198,502 ordered interactions",
        files=_sequence_files(
            "Beauty", "cb03635343187f36526ed4ba48102b53", "d4955784543b9e8e68385db31cb30144"
        ),
    ),
    DatasetSource(
        "lastfm",
        "LastFM (HetRec 2011) as preprocessed by S3-Rec: 1,090 users, 52,551 ordered interactions",
        files=_sequence_files(
            "LastFM", "e4fa30bf2ba80aba718e55f108561814", "81d69e7872d6d11fa455c04bf7758659"
        ),
    ),
)

#: The public datasets IntentRec knows by name, in a read-only mapping.
DATASETS: Mapping[str, DatasetSource] = MappingProxyType({source.name: source for source in _SOURCES})


def default_cache_dir() -> Path:
    """Return the download cache: ``$INTENTREC_CACHE`` if set, else ``~/.cache/intentrec``."""
    return Path(os.environ.get("INTENTREC_CACHE") or Path.home() / ".cache" / "intentrec").expanduser()


def builtin_path(name: str = "ml-latest-small") -> Path:
    """Return the folder of a dataset shipped inside the package.

    Parameters
    ----------
    name:
        A dataset of :data:`DATASETS` marked ``builtin``.

    Returns
    -------
    Path
        The packaged folder; nothing is copied.

    Raises
    ------
    DataError
        If ``name`` is not a built-in dataset, or the package was installed without its data files.

    Examples
    --------
    >>> sorted(p.name for p in builtin_path().iterdir())
    ['README.txt', 'links.csv', 'movies.csv', 'ratings.csv.gz', 'tags.csv']
    """
    source = _lookup(name)
    if not source.builtin:
        builtins = ", ".join(repr(s.name) for s in DATASETS.values() if s.builtin)
        raise DataError(
            f"dataset {name!r} is not shipped with IntentRec (built-in: {builtins}); "
            f"use fetch({name!r}) to download it"
        )
    folder = importlib.resources.files("intentrec") / "data" / "builtin" / name
    # Only a package installed as plain files gives a real folder; a zipped install would need extraction.
    if not isinstance(folder, Path) or not folder.is_dir():
        raise DataError(
            f"the built-in dataset {name!r} is missing from the installed package (looked in {folder}); "
            "reinstall intentrec from a wheel or source tree that includes its data files"
        )
    return folder


def fetch(name: str | DatasetSource, cache_dir: Path | None = None, base_url: str | None = None) -> Path:
    """Return a local folder holding a public dataset, downloading and verifying it on first use.

    Parameters
    ----------
    name:
        A name from :data:`DATASETS`, or a :class:`DatasetSource` for a dataset not in the registry.
    cache_dir:
        Where downloaded datasets live; default :func:`default_cache_dir`.
    base_url:
        A mirror such as ``"http://mirror.local/prefix"`` that replaces the scheme and host of every URL
        (the path is kept). Default: ``$INTENTREC_MIRROR`` if set, else the original hosts.

    Returns
    -------
    Path
        ``<cache_dir>/<name>`` with every file of the dataset, checked against its md5; for a built-in
        dataset, the packaged folder.

    Raises
    ------
    DataError
        If the name is unknown, the download fails (the message says where to put the files by hand),
        a checksum does not match, or an archive holds an unsafe path. The cache is left unchanged.

    Examples
    --------
    >>> fetch("ml-latest-small").name  # built in: no download
    'ml-latest-small'
    """
    source = name if isinstance(name, DatasetSource) else _lookup(name)
    if source.builtin:
        return _verified_builtin(source)

    target = Path(cache_dir).expanduser() if cache_dir is not None else default_cache_dir()
    target = target / source.name
    if target.exists() and _problems(target, source) == []:
        return target

    problem = unwritable(target.parent)
    if problem is not None:  # before any download, with the setting that moves the cache
        raise DataError(
            f"download cache {target.parent}: cannot be written ({problem}); give a folder that can be "
            "with INTENTREC_CACHE (or cache_dir)."
        )
    mirror = base_url if base_url is not None else os.environ.get("INTENTREC_MIRROR") or None
    # one download at a time per dataset: the processes of torchrun all ask for it; the later ones find
    # the copy the first one made
    with FileLock(target.parent / f".{target.name}.lock"):
        cached_problems = _problems(target, source) if target.exists() else None
        if cached_problems == []:
            return target
        # what a download killed outright (SIGKILL) left: atomic_directory's folders for this name alone
        # (mkdtemp's eight characters), not those of a dataset named "NAME.v2"
        left_by = re.compile(rf"\.{re.escape(target.name)}\.(old\.)?[a-z0-9_]{{8}}")
        for left in target.parent.iterdir():
            if left.is_dir() and left_by.fullmatch(left.name):
                shutil.rmtree(left, ignore_errors=True)
        with atomic_directory(target) as tmp:
            try:
                if source.archive is not None:
                    _fetch_archive(source, source.archive, tmp, mirror)
                else:
                    _fetch_files(source, tmp, mirror)
            except _Unreachable as failure:
                raise _offline_error(source, target, mirror, failure, cached_problems) from failure.__cause__
    return target


class _Unreachable(Exception):
    """A download that failed on the network side (no route, refused, HTTP error, timeout)."""

    def __init__(self, url: str, reason: object) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason = reason


def _lookup(name: str) -> DatasetSource:
    if name not in DATASETS:
        raise DataError(
            f"unknown dataset {name!r}{did_you_mean(name, DATASETS)}; known datasets: {', '.join(DATASETS)}"
        )
    return DATASETS[name]


def _verified_builtin(source: DatasetSource) -> Path:
    folder = builtin_path(source.name)
    problems = _problems(folder, source)
    if problems:
        raise DataError(
            f"the copy of {source.name!r} shipped with IntentRec at {folder} is damaged "
            f"({'; '.join(problems)}); reinstall intentrec"
        )
    return folder


def _problems(folder: Path, source: DatasetSource) -> list[str]:
    """Describe each file of ``source`` missing from ``folder`` or failing its md5 (empty: all good)."""
    problems = []
    for file in source.files:
        path = folder / file.name
        if not path.is_file():
            problems.append(f"{file.name} is missing")
        elif file.md5 is not None and (actual := _md5(path)) != file.md5:
            problems.append(f"{file.name} has md5 {actual}, expected {file.md5}")
    return problems


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as stream:
        while chunk := stream.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mirrored(url: str, mirror: str | None) -> str:
    """Swap the scheme and host of ``url`` for those of ``mirror``; the mirror's path becomes a prefix."""
    if not mirror:
        return url
    base = urlsplit(mirror)
    # file:// has no host but is a handy way to point at a local copy of the mirror layout.
    if base.scheme not in ("http", "https", "file") or (base.scheme != "file" and not base.netloc):
        raise DataError(
            f"mirror URL {mirror!r} (base_url or $INTENTREC_MIRROR) must look like "
            "'https://host[/prefix]', 'http://host:port' or 'file:///folder'"
        )
    original = urlsplit(url)
    return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + original.path, original.query, ""))


def _fetch_files(source: DatasetSource, folder: Path, mirror: str | None) -> None:
    """Download each file of ``source`` into ``folder``, checking each md5 as soon as it arrives."""
    for file in source.files:
        if file.url is None:
            raise DataError(f"dataset {source.name!r}: file {file.name!r} has no URL and there is no archive")
        url = _mirrored(file.url, mirror)
        actual = _download(url, folder / file.name)
        if file.md5 is not None and actual != file.md5:
            raise DataError(
                f"checksum mismatch for {url}: expected md5 {file.md5}, got {actual}; the download is "
                "corrupt or the file changed upstream, so nothing was written to the cache"
            )


def _fetch_archive(source: DatasetSource, archive: Archive, folder: Path, mirror: str | None) -> None:
    """Download ``archive``, extract its dataset folder into ``folder`` and check the extracted files."""
    url = _mirrored(archive.url, mirror)
    # The zip goes next to the extracted files (same file system) and is deleted as soon as it is unpacked.
    zip_path = folder / f".{source.name}.zip.part"
    _download(url, zip_path)
    try:
        _extract(zip_path, archive.folder, folder, url)
    finally:
        zip_path.unlink(missing_ok=True)
    for file in source.files:
        path = folder / file.name
        if not path.is_file():
            raise DataError(
                f"{url} has no {archive.folder}/{file.name}; expected the files "
                f"{', '.join(f.name for f in source.files)} in its folder {archive.folder!r}"
            )
        if file.md5 is not None and (actual := _md5(path)) != file.md5:
            raise DataError(
                f"checksum mismatch for {file.name} from {url}: expected md5 {file.md5}, got {actual}; the "
                "download is corrupt or the archive changed upstream, so nothing was written to the cache"
            )


def _extract(zip_path: Path, inner_folder: str, folder: Path, url: str) -> None:
    """Extract the members under ``inner_folder/`` into ``folder``, refusing unsafe member names.

    A member with an absolute path, a drive letter or a ``..`` component could write outside the cache
    (path traversal), so the whole archive is rejected before anything is extracted.
    """
    try:
        archive = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile as error:
        raise DataError(f"{url} is not a valid zip archive ({error}); check the URL or mirror") from error
    with archive:
        for member in archive.infolist():
            name = member.filename.replace("\\", "/")
            parts = name.split("/")
            # "folder//etc/x" too: an empty part, so the path after the folder is absolute
            if name.startswith("/") or re.match(r"[A-Za-z]:", name) or ".." in parts or "" in parts[:-1]:
                raise DataError(
                    f"{url} holds an unsafe member {member.filename!r} that would be written outside the "
                    "dataset folder; refusing to extract it"
                )
        prefix = inner_folder.strip("/") + "/"
        for member in archive.infolist():
            name = member.filename.replace("\\", "/")
            # Other members (e.g. macOS '__MACOSX/' metadata) are not part of the dataset.
            if member.is_dir() or not name.startswith(prefix):
                continue
            target = folder / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with archive.open(member) as source, target.open("wb") as out:
                    shutil.copyfileobj(source, out, _CHUNK)
            except (zipfile.BadZipFile, EOFError, zlib.error) as error:  # a damaged member (bad CRC, cut)
                raise DataError(
                    f"{url}: {member.filename} in the archive is damaged ({error}); download it again, or "
                    "check the mirror"
                ) from None


def _download(url: str, path: Path) -> str:
    """Stream ``url`` into ``path`` and return the md5 of what was received."""
    digest = hashlib.md5(usedforsecurity=False)
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=_TIMEOUT_S) as response, path.open("wb") as out:
            length = response.headers.get("Content-Length") or ""
            expected = int(length) if length.isdigit() and int(length) > 0 else None  # else not known
            with _progress(path.name.lstrip("."), expected) as advance:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
                    advance(len(chunk))
    # Only network failures: a local write error (disk full) is not fixed by placing files by hand.
    except (urllib.error.URLError, ConnectionError, TimeoutError, http.client.HTTPException) as error:
        raise _Unreachable(url, getattr(error, "reason", None) or error) from error
    # Files without a verified md5 rely on this to catch a connection that closed early.
    if expected is not None and received != expected:
        raise DataError(f"download of {url} stopped after {received} of {expected} bytes; try again")
    return digest.hexdigest()


@contextmanager
def _progress(label: str, total: int | None) -> Iterator[Callable[[int], None]]:
    """Yield ``advance(n_bytes)``: a rich progress bar on an interactive terminal, silent otherwise."""
    if not sys.stderr.isatty():
        yield lambda _n_bytes: None
        return
    # Imported here so non-interactive runs (tests, pipelines) never pay for rich's start-up.
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"downloading {label}", total=total)
        yield lambda n_bytes: progress.advance(task, n_bytes)


def _offline_error(
    source: DatasetSource, target: Path, mirror: str | None, failure: _Unreachable, cached: list[str] | None
) -> DataError:
    """Explain that the dataset is not cached, why the download failed, and how to place it by hand."""
    state = "absent from" if cached is None else f"incomplete in ({'; '.join(cached)})"
    if source.archive is not None:
        by_hand = (
            f"download {_mirrored(source.archive.url, mirror)} and extract the files of its folder "
            f"{source.archive.folder!r} ({', '.join(f.name for f in source.files)}) into {target}"
        )
    else:
        urls = " and ".join(_mirrored(file.url or "", mirror) for file in source.files)
        by_hand = f"download {urls} into {target}"
    return DataError(
        f"dataset {source.name!r} is {state} the cache at {target}, and downloading {failure.url} failed: "
        f"{failure.reason}. Without network access, {by_hand}"
    )
