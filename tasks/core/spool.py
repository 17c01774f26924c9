"""Spool copies: a compressed input or a Cloud Storage object, made a plain local file before it
is read, so every reader reads it as it reads any file (seek, resume by offset, quarantine).

A copy is written once per version of its origin (tasks/core/inputs.py `spool_path`), streamed
in chunks (memory stays at one chunk, whatever the size), to a temp file renamed into place: a
crash leaves no half copy. A run resumed on the same machine finds it; a new machine writes it
again from the start (a compressed input is decompressed from its beginning). Copies of files a
run has read to the end are removed as it goes on (`drop`).

Where an origin's bytes come from is an `Opener` by URL scheme: local files here, `gs://` objects
registered by tasks/warehouses/gcs_source.py.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from bqhold.tasks.core.atomic import atomic_write_to
from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFile

_CHUNK = 1 << 20
# origin, its size and mtime/generation -> its bytes as a stream
Opener = Callable[[InputFile], AbstractContextManager[BinaryIO]]
_OPENERS: dict[str, Opener] = {}


def register_opener(scheme: str, opener: Opener) -> None:
    """Read origins starting with `scheme` (e.g. "gs://") through `opener`."""
    _OPENERS[scheme] = opener


def _open_local(item: InputFile) -> AbstractContextManager[BinaryIO]:
    try:
        return open(item.origin, "rb")  # the caller closes it
    except OSError as exc:
        raise InputError(f"{item.origin}: cannot read input ({exc.strerror})") from exc


def _opener(origin: str) -> Opener:
    scheme = next((scheme for scheme in _OPENERS if origin.startswith(scheme)), None)
    if scheme is None and "://" in origin:
        raise InputError(f"{origin}: no reader for this kind of input in this process")
    return _OPENERS[scheme] if scheme else _open_local


def ensure_local(item: InputFile) -> None:
    """Make `item`'s spool copy, unless it is a plain file or its copy is there."""
    if item.origin is None or Path(item.path).exists():
        return
    with _opener(item.origin)(item) as source:
        stream = source
        if item.compression:
            stream = pa.CompressedInputStream(pa.PythonFile(source, mode="r"), item.compression)

        def copy(temp: Path) -> None:
            with open(temp, "wb") as out:  # a full disk here is the disk's error, not the input's
                while chunk := _read(stream, item):
                    out.write(chunk)

        atomic_write_to(Path(item.path), copy)


def _read(stream: BinaryIO, item: InputFile) -> bytes:
    """The next piece of an origin; a compressed one that does not decompress is an InputError."""
    try:
        return stream.read(_CHUNK)
    except (OSError, pa.ArrowException) as exc:
        if not item.compression:
            raise
        raise InputError(f"{item.origin}: cannot be read as {item.compression} ({exc})") from exc


def drop(items: tuple[InputFile, ...]) -> None:
    """Remove the spool copies of these inputs (a run has read them to the end)."""
    for item in items:
        if item.origin is not None:
            Path(item.path).unlink(missing_ok=True)
