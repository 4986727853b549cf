"""Tests for :mod:`intentrec.data.download` against a real HTTP server on 127.0.0.1.

The server serves files placed in ``tmp_path`` under the same paths as the real hosts, and each test
points ``fetch`` at it with ``base_url``. Files from the shared data staging area (real copies of the public
datasets) are used where present, so the registry's real md5s are exercised; those tests are skipped
when the staging area is absent. A guard makes any connection to a host other than 127.0.0.1 fail the test.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import io
import os
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from intentrec.data import download
from intentrec.data.download import DATASETS, Archive, DataFile, DatasetSource, builtin_path, fetch
from intentrec.errors import DataError

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
S3REC_PATH = "aHuiWang/CIKM2020-S3Rec/49a890dcb516c9ed3126564495234ea74d5cd566/data"

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason=f"shared data not found at {SHARED}")

# From ml-latest-small/SOURCE.md in the shared data staging area.
ML_LATEST_SMALL_MD5 = {
    "ratings.csv.gz": "4758d289bd1b00fe676e1a1d8e834f5e",
    "movies.csv": "b252328d16b085936b56eefad880ef9d",
    "tags.csv": "5d095828cb668ec2fae1e2cf0d99c671",
    "links.csv": "bc5292d5185e8c5fd8dc9a83fb2198d2",
    "README.txt": "9bc20a696092024abe52696ee6c5837f",
}


@dataclass
class Server:
    root: Path
    url: str
    requests: list[str]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ignore the user's environment and refuse any connection that is not to 127.0.0.1."""
    monkeypatch.delenv("INTENTREC_CACHE", raising=False)
    monkeypatch.delenv("INTENTREC_MIRROR", raising=False)
    create_connection = socket.create_connection

    def local_only(address, *args, **kwargs):  # type: ignore[no-untyped-def]
        if address[0] not in ("127.0.0.1", "localhost"):
            raise AssertionError(f"test tried to reach {address[0]}")
        return create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", local_only)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield Server(root, f"http://127.0.0.1:{httpd.server_address[1]}", requests)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def dead_url() -> str:
    """A URL on a port that was just free: nothing listens there, so connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def serve(server: Server, path: str, data: bytes) -> None:
    target = server.root / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def serve_beauty(server: Server) -> None:
    for name in ("Beauty.txt", "Beauty_item2attributes.json"):
        serve(
            server,
            f"{S3REC_PATH}/{name}",
            gzip.decompress((SHARED / "s3rec-seq" / f"{name}.gz").read_bytes()),
        )


def contents(cache: Path) -> list[str]:
    """What a cache folder holds, but the lock files of its downloads (``.NAME.lock``, kept for reuse)."""
    return sorted(path.name for path in cache.iterdir() if not path.name.endswith(".lock"))


def make_zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


TOY_RATINGS = b"userId,movieId,rating,timestamp\n1,10,4.0,100\n1,11,3.5,200\n2,10,5.0,150\n"
TOY = DatasetSource(
    "toy",
    "a MovieLens-shaped toy zip",
    files=(DataFile("ratings.csv", md5(TOY_RATINGS)),),
    archive=Archive("https://files.example.org/datasets/toy.zip", folder="toy"),
)


# --- downloads of single files -----------------------------------------------------------------------


@needs_shared
def test_beauty_is_downloaded_verified_and_then_served_from_the_cache(server: Server, tmp_path: Path) -> None:
    serve_beauty(server)
    cache = tmp_path / "cache"

    folder = fetch("beauty", cache_dir=cache, base_url=server.url)

    assert folder == cache / "beauty"
    assert sorted(p.name for p in folder.iterdir()) == ["Beauty.txt", "Beauty_item2attributes.json"]
    assert md5((folder / "Beauty.txt").read_bytes()) == "cb03635343187f36526ed4ba48102b53"
    assert sorted(server.requests) == sorted(
        f"/{S3REC_PATH}/{n}" for n in ("Beauty.txt", "Beauty_item2attributes.json")
    )

    assert fetch("beauty", cache_dir=cache, base_url=server.url) == folder
    assert len(server.requests) == 2  # the second call made no request
    assert contents(cache) == ["beauty"]  # no temporary leftovers


@needs_shared
def test_cache_and_mirror_come_from_the_environment(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    serve_beauty(server)
    monkeypatch.setenv("INTENTREC_CACHE", str(tmp_path / "env-cache"))
    monkeypatch.setenv("INTENTREC_MIRROR", server.url)

    assert fetch("beauty") == tmp_path / "env-cache" / "beauty"
    assert len(server.requests) == 2


@needs_shared
def test_a_damaged_cached_copy_is_downloaded_again(server: Server, tmp_path: Path) -> None:
    serve_beauty(server)
    folder = fetch("beauty", cache_dir=tmp_path, base_url=server.url)
    (folder / "Beauty.txt").write_text("1 2 3\n")

    assert fetch("beauty", cache_dir=tmp_path, base_url=server.url) == folder
    assert len(server.requests) == 4
    assert md5((folder / "Beauty.txt").read_bytes()) == "cb03635343187f36526ed4ba48102b53"


def test_checksum_mismatch_names_url_and_md5s_and_leaves_the_cache_empty(
    server: Server, tmp_path: Path
) -> None:
    tampered = b"1 2 3 4 5\n"
    serve(server, f"{S3REC_PATH}/Beauty.txt", tampered)
    cache = tmp_path / "cache"

    with pytest.raises(DataError) as caught:
        fetch("beauty", cache_dir=cache, base_url=server.url)

    message = str(caught.value)
    assert f"{server.url}/{S3REC_PATH}/Beauty.txt" in message
    assert "expected md5 cb03635343187f36526ed4ba48102b53" in message
    assert f"got {md5(tampered)}" in message
    assert contents(cache) == []


def test_a_cache_that_cannot_be_written_names_the_setting_that_moves_it(
    dead_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("mine")
    with pytest.raises(
        DataError,
        match=rf"download cache {tmp_path / 'file'}: cannot be written \(.*file is a file.*INTENTREC_CACHE",
    ):
        fetch("lastfm", cache_dir=tmp_path / "file", base_url=dead_url)
    # a folder without write permission (faked: this may run as root, who may write anywhere)
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(DataError, match=rf"{tmp_path / 'locked'}: cannot be written \(no permission"):
        fetch("lastfm", cache_dir=tmp_path / "locked", base_url=dead_url)


def test_server_down_explains_where_to_put_the_files(dead_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"

    with pytest.raises(DataError) as caught:
        fetch("lastfm", cache_dir=cache, base_url=dead_url)

    message = str(caught.value)
    assert f"dataset 'lastfm' is absent from the cache at {cache / 'lastfm'}" in message
    assert f"downloading {dead_url}/{S3REC_PATH}/LastFM.txt failed" in message
    assert "Connection refused" in message
    assert f"Without network access, download {dead_url}/{S3REC_PATH}/LastFM.txt and " in message
    assert contents(cache) == []


def test_a_failed_download_names_the_problems_of_the_cached_copy_and_keeps_it(
    dead_url: str, tmp_path: Path
) -> None:
    partial = tmp_path / "beauty"
    partial.mkdir()
    (partial / "Beauty_item2attributes.json").write_text("{}")

    with pytest.raises(DataError) as caught:
        fetch("beauty", cache_dir=tmp_path, base_url=dead_url)

    assert "incomplete in (Beauty.txt is missing; Beauty_item2attributes.json has md5" in str(caught.value)
    assert contents(tmp_path) == ["beauty"]
    assert (partial / "Beauty_item2attributes.json").read_text() == "{}"


def test_missing_file_on_the_server_is_a_data_error(server: Server, tmp_path: Path) -> None:
    with pytest.raises(
        DataError, match=r"downloading .*/datasets/movielens/ml-1m\.zip failed: File not found"
    ):
        fetch("ml-1m", cache_dir=tmp_path, base_url=server.url)
    assert server.requests == ["/datasets/movielens/ml-1m.zip"]


def test_unknown_name_suggests_the_closest() -> None:
    with pytest.raises(
        DataError, match=r"unknown dataset 'beuty' \(did you mean 'beauty'\?\); known datasets: "
    ):
        fetch("beuty")


def test_a_malformed_mirror_url_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"mirror URL 'mirror.local' .* must look like"):
        fetch("beauty", cache_dir=tmp_path, base_url="mirror.local")


# --- zip archives ------------------------------------------------------------------------------------


@needs_shared
def test_ml100k_zip_is_extracted_and_checked_with_the_registry_md5s(server: Server, tmp_path: Path) -> None:
    # The staged copy gzips the two large files; the official zip holds them uncompressed.
    members = {}
    for path in (SHARED / "ml-100k" / "raw").iterdir():
        data = path.read_bytes()
        if path.suffix == ".gz":
            path, data = path.with_suffix(""), gzip.decompress(data)
        members[f"ml-100k/{path.name}"] = data
    members["__MACOSX/ml-100k/._u.data"] = b"macOS metadata, not part of the dataset"
    serve(server, "datasets/movielens/ml-100k.zip", make_zip(members))

    folder = fetch("ml-100k", cache_dir=tmp_path, base_url=server.url)

    assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in DATASETS["ml-100k"].files)
    assert len((folder / "u.data").read_text().splitlines()) == 100_000
    assert fetch("ml-100k", cache_dir=tmp_path, base_url=server.url) == folder
    assert server.requests == ["/datasets/movielens/ml-100k.zip"]


def test_an_explicit_source_is_fetched_from_its_zip(server: Server, tmp_path: Path) -> None:
    serve(
        server, "datasets/toy.zip", make_zip({"toy/ratings.csv": TOY_RATINGS, "toy/extra/notes.txt": b"hi"})
    )

    folder = fetch(TOY, cache_dir=tmp_path, base_url=f"{server.url}/")

    assert (folder / "ratings.csv").read_bytes() == TOY_RATINGS
    assert (folder / "extra" / "notes.txt").read_bytes() == b"hi"  # the rest of the folder comes along
    assert not list(folder.glob(".*"))  # the downloaded zip itself was removed


def test_zip_member_checksum_mismatch_leaves_the_cache_empty(server: Server, tmp_path: Path) -> None:
    serve(server, "datasets/toy.zip", make_zip({"toy/ratings.csv": b"userId,movieId\n"}))

    with pytest.raises(
        DataError,
        match=rf"checksum mismatch for ratings.csv from .*toy\.zip: expected md5 {TOY.files[0].md5}",
    ):
        fetch(TOY, cache_dir=tmp_path / "cache", base_url=server.url)
    assert contents(tmp_path / "cache") == []


def test_zip_without_the_expected_files_is_a_data_error(server: Server, tmp_path: Path) -> None:
    serve(server, "datasets/toy.zip", make_zip({"other/ratings.csv": TOY_RATINGS}))

    with pytest.raises(DataError, match=r"toy\.zip has no toy/ratings\.csv"):
        fetch(TOY, cache_dir=tmp_path / "cache", base_url=server.url)
    assert contents(tmp_path / "cache") == []


def test_a_damaged_zip_member_is_a_data_error_and_leaves_the_cache_empty(
    server: Server, tmp_path: Path
) -> None:
    archive = make_zip({"toy/ratings.csv": TOY_RATINGS * 100})
    # flip bytes inside the compressed data: the directory reads, the member fails its CRC or inflate
    middle = len(archive) // 3
    damaged = archive[:middle] + bytes(b ^ 0xFF for b in archive[middle : middle + 8]) + archive[middle + 8 :]
    serve(server, "datasets/toy.zip", damaged)

    with pytest.raises(DataError, match=r"toy\.zip: toy/ratings\.csv in the archive is damaged"):
        fetch(TOY, cache_dir=tmp_path / "cache", base_url=server.url)
    assert contents(tmp_path / "cache") == []


def test_a_file_that_is_not_a_zip_is_a_data_error(server: Server, tmp_path: Path) -> None:
    serve(server, "datasets/toy.zip", b"<html>mirror error page</html>")

    with pytest.raises(DataError, match=r"toy\.zip is not a valid zip archive"):
        fetch(TOY, cache_dir=tmp_path, base_url=server.url)


@pytest.mark.parametrize(
    "evil", ["toy/../../escaped.txt", "/tmp/escaped.txt", "C:/escaped.txt", "toy\\..\\..\\escaped.txt"]
)
def test_zip_path_traversal_is_rejected_before_extraction(server: Server, tmp_path: Path, evil: str) -> None:
    serve(server, "datasets/toy.zip", make_zip({"toy/ratings.csv": TOY_RATINGS, evil: b"pwned"}))
    cache = tmp_path / "a" / "cache"

    with pytest.raises(DataError, match=r"unsafe member .*escaped\.txt.* refusing to extract"):
        fetch(TOY, cache_dir=cache, base_url=server.url)
    assert contents(cache) == []
    assert not list(tmp_path.rglob("escaped.txt"))


def test_a_member_whose_path_turns_absolute_after_the_folder_is_rejected(
    server: Server, tmp_path: Path
) -> None:
    outside = tmp_path / "outside" / "escaped.txt"
    evil = f"toy/{outside}"  # "toy//tmp/.../escaped.txt": the part after "toy/" is an absolute path
    serve(server, "datasets/toy.zip", make_zip({"toy/ratings.csv": TOY_RATINGS, evil: b"pwned"}))
    with pytest.raises(DataError, match=r"unsafe member .*escaped\.txt.* refusing to extract"):
        fetch(TOY, cache_dir=tmp_path / "cache", base_url=server.url)
    assert not outside.exists()


def test_two_processes_fetching_one_dataset_download_it_once(server: Server, tmp_path: Path) -> None:
    serve(server, "datasets/toy.zip", make_zip({"toy/ratings.csv": TOY_RATINGS}))
    stale = tmp_path / "cache" / ".toy.k1ll3d_x"  # a download killed outright, long ago
    stale.mkdir(parents=True)
    other = tmp_path / "cache" / ".toy.v2.a1b2c3d4"  # another dataset's download, in progress
    other.mkdir()
    with ThreadPoolExecutor(4) as pool:  # the lock is per open file, so threads contend as processes do
        folders = list(
            pool.map(lambda _: fetch(TOY, cache_dir=tmp_path / "cache", base_url=server.url), range(4))
        )
    assert folders == [tmp_path / "cache" / "toy"] * 4
    assert server.requests == ["/datasets/toy.zip"]
    assert contents(tmp_path / "cache") == [".toy.v2.a1b2c3d4", "toy"]


def test_a_malformed_content_length_is_read_as_unknown(tmp_path: Path) -> None:
    body = make_zip({"toy/ratings.csv": TOY_RATINGS})

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "abc")  # a broken proxy's header: the md5 still checks
            self.end_headers()
            self.wfile.write(body)
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        folder = fetch(TOY, cache_dir=tmp_path, base_url=f"http://127.0.0.1:{httpd.server_address[1]}")
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert (folder / "ratings.csv").read_bytes() == TOY_RATINGS


# --- the built-in dataset ----------------------------------------------------------------------------


def test_builtin_ml_latest_small_has_its_five_files_with_their_md5s() -> None:
    folder = builtin_path()

    assert {p.name: md5(p.read_bytes()) for p in folder.iterdir()} == ML_LATEST_SMALL_MD5


@needs_shared
def test_builtin_md5s_are_those_of_source_md() -> None:
    text = (SHARED / "ml-latest-small" / "SOURCE.md").read_text()
    documented = dict(re.findall(r"^\| (\S+) \| \d+ \| ([0-9a-f]{32}) \|", text, flags=re.MULTILINE))

    assert documented == ML_LATEST_SMALL_MD5


def test_ml_latest_small_resolves_to_the_builtin_copy_without_download(
    server: Server, tmp_path: Path
) -> None:
    assert fetch("ml-latest-small", cache_dir=tmp_path / "cache", base_url=server.url) == builtin_path()
    assert server.requests == []
    assert not (tmp_path / "cache").exists()


def test_builtin_path_of_a_downloadable_dataset_is_a_data_error() -> None:
    with pytest.raises(DataError, match=r"'ml-1m' is not shipped with IntentRec .* use fetch\('ml-1m'\)"):
        builtin_path("ml-1m")


# --- the registry itself -----------------------------------------------------------------------------


def test_registry_entries_are_complete_and_keyed_by_name() -> None:
    assert set(DATASETS) == {"ml-100k", "ml-1m", "ml-latest-small", "beauty", "lastfm"}
    for name, source in DATASETS.items():
        assert source.name == name
        assert all(f.md5 is None or re.fullmatch(r"[0-9a-f]{32}", f.md5) for f in source.files)
        # Every file can be obtained: from the archive, or from its own URL.
        assert source.archive is not None or all(f.url for f in source.files)
    with pytest.raises(TypeError):
        DATASETS["new"] = TOY  # type: ignore[index]


def test_mirror_keeps_the_path_and_adds_the_prefix() -> None:
    url = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
    assert (
        download._mirrored(url, "http://m.local:8080/pre/")
        == "http://m.local:8080/pre/datasets/movielens/ml-100k.zip"
    )
    assert download._mirrored(url, None) == url
