"""HOLD₂'s journal: each change to a durable HOLD₂'s database, as one numbered object.

A durable HOLD₂ (`--hold-url gs://BUCKET/PREFIX`) keeps its files (segments, quarantine) and
its journal in the bucket; the local `--hold-dir` is a working copy whose DuckDB database is
rebuilt from the journal on a machine that has none (docs/design.md, HOLD₂ layout). An entry is
one change as `tasks/storage/hold_store.py` made it: an operation, its arguments (JSON), and for
a committed batch its new dedupe keys (a Parquet table, the arguments in its metadata). Entries
are numbered from 1 with no gap; the number is the object's name, created only if absent, so two
writers can never both add the same entry (the second is refused: it is fenced).

This module is the pure part: names, and entries to and from bytes.
"""

from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

JOURNAL_FOLDER = "journal/"
_METADATA_KEY = b"bqhold_journal"
_NAME = re.compile(r"^(\d{12})\.(json|parquet)$")


@dataclass(frozen=True)
class JournalEntry:
    """Change number `seq` of a HOLD₂: `op` with its `args`, and a batch's new keys if any."""

    seq: int
    op: str
    args: dict[str, Any]
    keys: pl.DataFrame | None = None  # (key_hash UInt64, key String)

    @property
    def name(self) -> str:
        """The entry's object name, relative to the HOLD₂ prefix."""
        return entry_name(self.seq, self.keys is not None)


def entry_name(seq: int, with_keys: bool) -> str:
    """`journal/000000000042.json` (`.parquet` for an entry that carries keys)."""
    return f"{JOURNAL_FOLDER}{seq:012d}.{'parquet' if with_keys else 'json'}"


def seq_of(name: str) -> int | None:
    """The number of the entry named `name` (relative to the journal folder), or None: not an entry."""
    found = _NAME.fullmatch(name)
    return int(found.group(1)) if found else None


def _json_default(value: object) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not kept in HOLD₂'s journal")


def _header(entry: JournalEntry) -> bytes:
    return json.dumps({"op": entry.op, "args": entry.args}, default=_json_default, sort_keys=True).encode()


def encode(entry: JournalEntry) -> bytes:
    """The bytes of an entry's object."""
    header = _header(entry)
    if entry.keys is None:
        return header
    table = entry.keys.select("key_hash", "key").to_arrow()
    table = table.replace_schema_metadata({_METADATA_KEY: header})
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()


def decode(name: str, data: bytes) -> JournalEntry:
    """The entry an object named `name` (relative to the journal folder) holds."""
    seq = seq_of(name)
    if seq is None:
        raise ValueError(f"{name} is not a journal entry")
    keys = None
    if name.endswith(".parquet"):
        table = pq.read_table(pa.BufferReader(data))
        header = json.loads(table.schema.metadata[_METADATA_KEY])
        keys = pl.from_arrow(table.replace_schema_metadata(None)).cast({"key_hash": pl.UInt64, "key": pl.String})
    else:
        header = json.loads(data)
    return JournalEntry(seq, header["op"], header["args"], keys)
