"""What HOLD₂ needs of a durable copy of itself (`--hold-url`): a journal and a place for files.

The store (tasks/storage/hold_store.py) writes every change to the durable copy before it
commits it locally, and rebuilds its working copy from it; the copy in Cloud Storage is
`tasks/warehouses/gcs_hold.py`. Names are relative to the durable HOLD₂'s root, and a file's
name is its path relative to the local hold dir (`runs/<run>/segments/batch-000007.parquet`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

from bqhold.tasks.core.journal import JournalEntry


class HoldMirror(Protocol):
    """A durable HOLD₂ this process holds the lease of (one writer at a time)."""

    where: str  # its URL, as the user gave it (gs://BUCKET/PREFIX)

    def entries_from(self, seq: int) -> Iterator[JournalEntry]:
        """The journal's entries numbered `seq` and later, in order."""
        ...

    def append(self, entry: JournalEntry) -> None:
        """Add the next entry; StateError if an entry of that number exists (another writer)."""
        ...

    def put(self, path: Path, name: str) -> None:
        """Make the file `name` hold the bytes of the local file `path`."""
        ...

    def names(self, prefix: str) -> list[str]:
        """The files whose names start with `prefix`, sorted."""
        ...

    def fetch(self, name: str, path: Path) -> bool:
        """Write the file `name` to `path` atomically; False if there is none."""
        ...

    def delete(self, names: list[str]) -> None:
        """Remove these files (those already gone are no error)."""
        ...

    def close(self) -> None:
        """Give the lease up; nothing more is written."""
        ...
