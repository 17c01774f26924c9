"""The one way bqhold writes a file: temp file in the same directory, fsync, rename, fsync dir.

A reader (or a crash) therefore sees either the old file or the complete new one, never
a torn write. Temp files carry `TEMP_SUFFIX` so a resumed run can sweep what a crash left.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".tmp"


def fsync_dir(directory: Path) -> None:
    """Make a rename or unlink inside `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_to(
    path: Path,
    write: Callable[[Path], None],
    before_rename: Callable[[], None] | None = None,
) -> int:
    """Write `path` atomically via `write(temp_path)`; return the number of bytes written.

    For writers that open the path themselves (polars streams to a path, but buffers the whole
    output when handed a Python file object)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".{path.name}.{os.getpid()}{TEMP_SUFFIX}")
    try:
        write(temp)
        size = _fsync_file(temp)
        if before_rename is not None:
            before_rename()
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
    return size


def _fsync_file(path: Path) -> int:
    """Make what was written to `path` durable (fsync flushes the file, whichever fd asks); return its size."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


def atomic_write(
    path: Path,
    write: Callable[[BinaryIO], None],
    before_rename: Callable[[], None] | None = None,
) -> int:
    """Write `path` atomically via `write(fileobj)`; return the number of bytes written."""

    def through_handle(temp: Path) -> None:
        with open(temp, "wb") as handle:
            write(handle)

    return atomic_write_to(path, through_handle, before_rename)


def atomic_write_bytes(path: Path, data: bytes) -> int:
    """Write `data` to `path` atomically."""
    return atomic_write(path, lambda handle: handle.write(data))


def sweep_temp_files(directory: Path) -> int:
    """Remove temp files a crashed writer left in `directory`; return how many."""
    if not directory.is_dir():
        return 0
    removed = 0
    for leftover in directory.glob(f".*{TEMP_SUFFIX}"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed
