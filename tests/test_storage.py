"""Tests for intentrec.storage: files and folders are replaced whole or left as they were."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from intentrec.errors import ConfigError, IntentRecError
from intentrec.storage import (
    atomic_directory,
    atomic_path,
    check_file_target,
    read_text,
    write_json,
    write_text,
    write_with,
)


class Interrupted(Exception):
    """Stands for anything that stops a write half-way."""


def names(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_atomic_path_moves_the_result_into_place(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "model.bin"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_bytes(b"weights")
    assert target.read_bytes() == b"weights"
    assert names(target.parent) == ["model.bin"]


def test_atomic_path_leaves_the_old_file_intact_when_the_block_raises(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(Interrupted), atomic_path(target) as tmp:
        tmp.write_text("half-writ")
        raise Interrupted
    assert target.read_text() == "old"
    assert names(tmp_path) == ["metrics.json"]


def test_write_helpers(tmp_path: Path) -> None:
    write_text(tmp_path / "a.txt", "héllo")
    write_json(tmp_path / "b.json", {"k": [1, 2]})
    write_with(tmp_path / "c.bin", lambda tmp: tmp.write_bytes(b"\x00\x01"))
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert json.loads((tmp_path / "b.json").read_text()) == {"k": [1, 2]}
    assert (tmp_path / "c.bin").read_bytes() == b"\x00\x01"
    assert names(tmp_path) == ["a.txt", "b.json", "c.bin"]


def test_atomic_directory_creates_a_new_folder(tmp_path: Path) -> None:
    with atomic_directory(tmp_path / "run") as tmp:
        (tmp / "config.json").write_text("{}")
    assert names(tmp_path / "run") == ["config.json"]
    assert names(tmp_path) == ["run"]


def test_atomic_directory_replaces_an_existing_folder_as_a_whole(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "stale.txt").write_text("old")
    with atomic_directory(folder) as tmp:
        (tmp / "fresh.txt").write_text("new")
    assert names(folder) == ["fresh.txt"]
    assert names(tmp_path) == ["run"], "neither the new nor the old temporary folder is left behind"


def test_atomic_directory_leaves_the_old_folder_intact_when_the_block_raises(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    folder.mkdir()
    (folder / "kept.txt").write_text("old")
    with pytest.raises(Interrupted), atomic_directory(folder) as tmp:
        (tmp / "partial.txt").write_text("half")
        raise Interrupted
    assert names(folder) == ["kept.txt"]
    assert (folder / "kept.txt").read_text() == "old"
    assert names(tmp_path) == ["run"]


def test_artefacts_get_the_permissions_of_any_new_file(tmp_path: Path) -> None:
    """Not mkstemp's private 0600: a run written by one user is readable by those it is shared with."""
    previous = os.umask(0o022)
    try:
        write_text(tmp_path / "report.html", "<html></html>")
        with atomic_directory(tmp_path / "dataset") as folder:
            (folder / "items.parquet").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "report.html").stat().st_mode) == 0o644
    assert stat.S_IMODE((tmp_path / "dataset").stat().st_mode) == 0o755


def test_check_file_target_names_a_folder_or_a_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("mine")
    assert (
        check_file_target(tmp_path / "new" / "deeper" / "out.parquet") == tmp_path / "new/deeper/out.parquet"
    )
    with pytest.raises(ConfigError, match=f"--out {tmp_path}: that is a folder"):
        check_file_target(tmp_path)
    with pytest.raises(ConfigError, match=f"--report {tmp_path / 'file/x/page.html'}: .*file is a file"):
        check_file_target(tmp_path / "file" / "x" / "page.html", "--report")
    assert names(tmp_path) == ["file"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write into any folder")
def test_check_file_target_names_a_folder_without_write_permission(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(ConfigError, match=f"--out {locked / 'r.parquet'}: the folder {locked} cannot be"):
        check_file_target(locked / "r.parquet")


def test_check_file_target_asks_for_write_permission(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the test above, where root would pass it: the permission is what the check asks the system."""
    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)
    with pytest.raises(ConfigError, match=f"--out {tmp_path / 'r.parquet'}: the folder {tmp_path} cannot be"):
        check_file_target(tmp_path / "r.parquet")


def test_a_place_that_cannot_be_written_is_an_error_naming_it(tmp_path: Path) -> None:
    """Not an OSError naming a temporary file: the path the user gave, and why."""
    (tmp_path / "file").write_text("mine")
    with pytest.raises(
        ConfigError,
        match=rf"{tmp_path / 'file/out.json'}: cannot write there \({tmp_path / 'file'} is a file",
    ):
        write_json(tmp_path / "file" / "out.json", {})
    folder = atomic_directory(tmp_path / "file" / "run")
    with pytest.raises(ConfigError, match=rf"{tmp_path / 'file/run'}: cannot write there"), folder:
        pass
    assert names(tmp_path) == ["file"] and (tmp_path / "file").read_text() == "mine"


def test_text_that_cannot_be_read_is_an_error_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "ids.txt").write_bytes(b"u1\n\xffu2\n")
    with pytest.raises(ConfigError, match=r"ids\.txt: not a UTF-8 text file \(invalid start byte at byte 3"):
        read_text(tmp_path / "ids.txt", error=ConfigError)
    with pytest.raises(IntentRecError, match=rf"{tmp_path}: cannot be read \(Is a directory\)"):
        read_text(tmp_path)  # any OSError: a folder here, a file without read permission for a user
    assert read_text(tmp_path / "ids.txt", "latin-1") == "u1\n\xffu2\n"
