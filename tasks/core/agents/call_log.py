"""The answers of a run's agent calls, durable as they arrive (docs/design.md, invariant 11).

`runs/<run>/agent/answers-*.arrows`: Arrow IPC streams, appended with one record batch per
flush and fsynced, each row one record's answer: its call key, where the record is in HOLD₁
(file, offset), the rejection reason (null when answered) and the agent's output columns. A kill
can cut a stream's last batch short; reading stops there and keeps everything before it.

A batch reads the answers its records already have before calling (the calls of a batch that
died with the process), and once it is committed `settle` drops every answer of a record before
the checkpoint: those are in HOLD₂'s segments now. An answer is kept until then, whatever batch
size the resumed run picks.
"""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.ipc as ipc

from bqhold.tasks.core.atomic import fsync_dir
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.schema import POLARS_TYPES, Schema

CALL_KEY, FILE, OFFSET, REASON = "call_key", "file_index", "offset", "reason"
_SUFFIX = ".arrows"


def log_schema(outputs: Schema) -> pl.Schema:
    """The columns of a call log for an agent with `outputs`."""
    own = {CALL_KEY: pl.String(), FILE: pl.Int64(), OFFSET: pl.Int64(), REASON: pl.String()}
    return pl.Schema(own | {name: POLARS_TYPES[kind] for name, kind in outputs.items()})


class LogWriter:
    """One stream of answers: `append` returns once the rows are on disk. Appends are taken one
    at a time (a write left running in its thread by a cancelled task finishes before the next)."""

    def __init__(self, path: Path, schema: pl.Schema) -> None:
        self.path, self.schema = path, schema
        self._turn = threading.Lock()
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

    def close(self) -> None:
        with self._turn:
            self._stream.close()
            self._file.close()


class CallLog:
    """The answers kept for one run of an agent pipeline."""

    def __init__(self, directory: Path, outputs: Schema) -> None:
        self.directory, self.schema = directory, log_schema(outputs)

    def _files(self) -> list[Path]:
        return sorted(self.directory.glob(f"*{_SUFFIX}")) if self.directory.exists() else []

    def read(self) -> pl.DataFrame:
        """Every answer kept, one row per call key (the first kept wins)."""
        parts = [part for path in self._files() for part in _complete_batches(path)]
        if not parts:
            return pl.DataFrame(schema=self.schema)
        frame = pl.from_arrow(pa.Table.from_batches(parts))
        return frame.cast(dict(self.schema)).unique(CALL_KEY, keep="first", maintain_order=True)

    def writer(self) -> LogWriter:
        """A new stream for the answers of the calls about to be made."""
        self.directory.mkdir(parents=True, exist_ok=True)
        return LogWriter(self.directory / f"answers-{uuid.uuid4().hex[:12]}{_SUFFIX}", self.schema)

    def clear(self) -> None:
        """Drop every answer kept (all of them are in HOLD₂'s segments)."""
        files = self._files()
        for path in files:
            path.unlink(missing_ok=True)
        if files:
            fsync_dir(self.directory)

    def settle(self, position: Position) -> None:
        """After a batch is committed up to `position`: drop the answers of records before it,
        keeping (in one new stream, written before the old ones go) those of records after it."""
        files = self._files()
        if not files:
            return
        kept = self.read().filter(
            (pl.col(FILE) > position.file_index)
            | ((pl.col(FILE) == position.file_index) & (pl.col(OFFSET) >= position.offset))
        )
        if kept.height:
            writer = self.writer()
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
