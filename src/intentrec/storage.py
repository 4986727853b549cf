"""Atomic writes: an artefact is either absent or complete, never half-written; and text read back with
an error that names the file.

Every file is written to a temporary sibling and moved into place with ``os.replace``, which is atomic on
POSIX when both paths are on the same file system.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from intentrec.errors import ConfigError, IntentRecError


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only if the block succeeds."""
    path = Path(path)
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp makes the file private (0600); an artefact gets the permissions of any new file
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextmanager
def _writable(path: Path) -> Iterator[None]:
    """A folder or temporary sibling for ``path`` that cannot be made (no permission, a file in the way)
    is a ConfigError naming ``path``; the OSError would name only the temporary file."""
    try:
        yield
    except OSError as problem:
        parent = _nearest_existing(path)
        why = f"{parent} is a file, not a folder" if not parent.is_dir() else problem.strerror or problem
        raise ConfigError(f"{path}: cannot write there ({why}).") from None


def _nearest_existing(path: Path) -> Path:
    """The closest of ``path``'s parents that exists (the working folder at worst)."""
    return next((folder for folder in path.parents if folder.exists()), Path("."))


def unwritable(folder: Path) -> str | None:
    """Why no file can be written in ``folder``, made with its parents if missing; None when one can."""
    parent = _nearest_existing(folder / "file")
    if not parent.is_dir():
        return f"{parent} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as problem:
        return str(problem.strerror or problem)
    return None if os.access(folder, os.W_OK | os.X_OK) else "no permission to write there"


def read_text(path: Path, encoding: str = "utf-8", error: type[IntentRecError] = IntentRecError) -> str:
    """The text of the file ``path``; an ``error`` naming it when it cannot be read or is not text in
    ``encoding`` (an OSError or UnicodeDecodeError would name neither the file nor what to do)."""
    try:
        return path.read_text(encoding=encoding)
    except UnicodeDecodeError as problem:
        raise error(f"{path}: not a UTF-8 text file ({problem.reason} at byte {problem.start}).") from None
    except OSError as problem:
        raise error(f"{path}: cannot be read ({problem.strerror or problem}).") from None


def check_file_target(path: str | Path, option: str = "--out") -> Path:
    """``path`` as a Path if a file can be written there; a ConfigError naming ``option`` otherwise.

    Called before the work whose result goes there, so that a folder given for a file costs nothing.
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{option} {path}: that is a folder; give the name of the file to write.")
    parent = _nearest_existing(path)
    if not parent.is_dir():
        raise ConfigError(f"{option} {path}: {parent} is a file, not a folder.")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"{option} {path}: the folder {parent} cannot be written (no permission).")
    return path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_with(path: str | Path, writer: Callable[[Path], None]) -> None:
    """Call ``writer(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


@contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory that replaces ``path`` as a whole when the block succeeds."""
    path = Path(path)
    with _writable(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp's folder is private (0700), as mkstemp's files
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / "content")
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
