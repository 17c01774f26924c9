"""The answers of a run's agent calls, durable as they arrive (docs/design.md, invariant 11).

`runs/<run>/agent/answers-*.arrows`: Arrow IPC streams, appended with one record batch per
flush and fsynced, each row one record's answer: its call key, where the record is in HOLD₁
(file, offset), the rejection reason (null when answered) and the agent's output columns. A kill
can cut a stream's last batch short; reading stops there and keeps everything before it.

A batch reads the answers its records already have before calling (the calls of a batch that
died with the process), and once it is committed `settle` drops every answer of a record before
the checkpoint: those are in HOLD₂'s segments now. An answer is kept until then, whatever batch
size the resumed run picks.

With a durable HOLD₂ (`--hold-url`) every write is also put there as a file of its own
(`answers-b<batch>-<stream>-<n>.arrows`, a complete stream), before the call counts as done; a
batch on a new machine first fetches the files of its batch number (`catch_up`). Those files stay
until `cleanup --apply` removes the run's segments: HOLD₂ is never deleted automatically.
"""

from __future__ import annotations

import os
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from bqhold.tasks.core.atomic import fsync_dir
from bqhold.tasks.core.column_types import Schema, polars_type
from bqhold.tasks.core.records import Position

CALL_KEY, FILE, OFFSET, REASON = "call_key", "file_index", "offset", "reason"
_SUFFIX = ".arrows"


class FileMirror(Protocol):
    """What a call log needs of a durable HOLD₂ (tasks/storage/mirror.py's HoldMirror has it)."""

    def put(self, path: Path, name: str) -> None: ...

    def names(self, prefix: str) -> list[str]: ...

    def fetch(self, name: str, path: Path) -> bool: ...


def log_schema(outputs: Schema) -> pl.Schema:
    """The columns of a call log for an agent with `outputs`."""
    own = {CALL_KEY: pl.String(), FILE: pl.Int64(), OFFSET: pl.Int64(), REASON: pl.String()}
    return pl.Schema(own | {name: polars_type(kind) for name, kind in outputs.items()})


class LogWriter:
    """One stream of answers: `append` returns once the rows are on disk. Appends are taken one
    at a time (a write left running in its thread by a cancelled task finishes before the next)."""

    def __init__(
        self, path: Path, schema: pl.Schema, after_append: Callable[[pa.Table, int], None] | None = None
    ) -> None:
        self.path, self.schema, self.after_append = path, schema, after_append
        self._turn = threading.Lock()
        self._appended = 0
        self._arrow_schema = pl.DataFrame(schema=schema).to_arrow().schema
        self._file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._stream = ipc.new_stream(self._file, self._arrow_schema)
        self._flush()
        fsync_dir(path.parent)

    def _flush(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def append(self, rows: pl.DataFrame) -> None:
        """Write `rows` (the log's columns) and fsync."""
        table = pa.Table.from_batches(rows.to_arrow().to_batches(), self._arrow_schema)
        with self._turn:
            self._stream.write_table(table)
            self._flush()
            self._appended += 1
            if self.after_append is not None:
                self.after_append(table, self._appended)

    def close(self) -> None:
        with self._turn:
            self._stream.close()
            self._file.close()


class CallLog:
    """The answers kept for one run of an agent pipeline."""

    def __init__(self, directory: Path, outputs: Schema, mirror: FileMirror | None = None, remote: str = "") -> None:
        """`remote`: the directory's name in the durable HOLD₂ `mirror` (`runs/<run>/agent/`)."""
        self.directory, self.schema = directory, log_schema(outputs)
        self.mirror, self.remote = mirror, remote

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SUFFIX}")) if self.directory.exists() else []

    def read(self) -> pl.DataFrame:
        """Every answer kept, one row per call key (the first kept wins)."""
        parts = [part for path in self._files() for part in _complete_batches(path)]
        if not parts:
            return pl.DataFrame(schema=self.schema)
        frame = pl.from_arrow(pa.Table.from_batches(parts))
        return frame.cast(dict(self.schema)).unique(CALL_KEY, keep="first", maintain_order=True)

    def writer(self, batch: int) -> LogWriter:
        """A new stream for the answers of the calls batch `batch` is about to make."""
        self.directory.mkdir(parents=True, exist_ok=True)
        stem = f"answers-b{batch:06d}-{uuid.uuid4().hex[:12]}"
        mirrored = None if self.mirror is None else lambda table, n: self._put(table, f"{stem}-{n:06d}{_SUFFIX}")
        return LogWriter(self.directory / f"{stem}{_SUFFIX}", self.schema, mirrored)

    def _put(self, table: pa.Table, name: str) -> None:
        """One write, as a complete stream of its own, into the durable HOLD₂."""
        piece = self.directory / f".{name}.part"
        with pa.OSFile(str(piece), "wb") as out, ipc.new_stream(out, table.schema) as stream:
            stream.write_table(table)
        try:
            self.mirror.put(piece, self.remote + name)
        finally:
            piece.unlink(missing_ok=True)

    def catch_up(self, batch: int) -> None:
        """Fetch from the durable HOLD₂ the answers written for batch `batch` on another machine
        (those of a stream this disk has are here already)."""
        if self.mirror is None:
            return
        here = {path.name for path in self._files()}
        for name in self.mirror.names(f"{self.remote}answers-b{batch:06d}-"):
            piece = name[len(self.remote) :]
            stream = piece.rsplit("-", 1)[0] + _SUFFIX
            if piece not in here and stream not in here:
                self.directory.mkdir(parents=True, exist_ok=True)
                self.mirror.fetch(name, self.directory / piece)

    def clear(self) -> None:
        """Drop every answer kept (all of them are in HOLD₂'s segments)."""
        files = self._files()
        for path in files:
            path.unlink(missing_ok=True)
        if files:
            fsync_dir(self.directory)

    def settle(self, position: Position, next_batch: int) -> None:
        """After a batch is committed up to `position`: drop the answers of records before it,
        keeping (in one new stream of `next_batch`, written before the old ones go) those of
        records after it."""
        files = self._files()
        if not files:
            return
        kept = self.read().filter(
            (pl.col(FILE) > position.file_index)
            | ((pl.col(FILE) == position.file_index) & (pl.col(OFFSET) >= position.offset))
        )
        if kept.height:
            writer = self.writer(next_batch)
            writer.append(kept)
            writer.close()
        for path in files:
            path.unlink(missing_ok=True)
        fsync_dir(self.directory)


def _complete_batches(path: Path) -> list[pa.RecordBatch]:
    """The record batches of a stream up to the first incomplete one (a kill mid-append)."""
    batches: list[pa.RecordBatch] = []
    try:
        with ipc.open_stream(pa.OSFile(str(path))) as reader:
            for batch in reader:
                batches.append(batch)
    except (pa.ArrowInvalid, OSError, EOFError):
        pass
    return batches
