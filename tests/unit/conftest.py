"""Fixtures shared by the unit tests of tasks/core: real files in tmp_path, no mocks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest


@pytest.fixture
def write_bytes(tmp_path: Path) -> Callable[[str, bytes], str]:
    """Write `data` to a file named `name` in tmp_path and return its path as text."""

    def write(name: str, data: bytes) -> str:
        path = tmp_path / name
        path.write_bytes(data)
        return str(path)

    return write
