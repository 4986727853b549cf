"""Fixtures for the reader tests: the shared real data, and tiny (compressed) files written to tmp_path."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import pytest
import zstandard

#: Real public datasets staged next to the repository; tests that need them skip when it is absent.
SHARED = Path(__file__).resolve().parents[3] / ".." / "shared" / "data"

WriteFile = Callable[..., Path]


@pytest.fixture
def shared() -> Path:
    """The shared real-data folder, or skip the test."""
    if not SHARED.is_dir():
        pytest.skip(f"shared real data not found at {SHARED}")
    return SHARED


@pytest.fixture
def write(tmp_path: Path) -> WriteFile:
    """``write("name[.gz|.zst]", content, encoding="utf-8")``: a file in tmp_path, compressed by suffix."""

    def write_file(name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
        data = content.encode(encoding) if isinstance(content, str) else content
        if name.endswith(".gz"):
            data = gzip.compress(data)
        elif name.endswith(".zst"):
            data = zstandard.ZstdCompressor().compress(data)
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return write_file
