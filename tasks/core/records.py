"""Value objects of the batch path: where a batch starts and ends, and what it rejected."""

from __future__ import annotations

from array import array
from bisect import bisect_left
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

import polars as pl

if TYPE_CHECKING:
    from collections.abc import Sequence

    import numpy as np

LINE_COLUMN = "__line"  # 1-based source line (row for Parquet, element for a JSON array) of each record; never staged
OFFSET_COLUMN = "__offset"  # byte offset (row index for Parquet) of each record; never staged
QUARANTINE_REASON = "_quarantine_reason"  # a transform may set it to reject a row
INTERNAL_COLUMNS = frozenset({LINE_COLUMN, OFFSET_COLUMN, QUARANTINE_REASON})


class RecordFormat(str, Enum):
    """How the records of a source are written, which says how to read one of them again."""

    JSONL = "jsonl"  # one JSON object per line
    JSON_ARRAY = "json"  # one top-level JSON array of objects
    CSV = "csv"  # a header line, then one record per line (quoted fields may span lines)
    ROWS = "parquet"  # rows of a columnar source (Parquet, a DuckDB table): kept as JSON text when quarantined


@dataclass(frozen=True)
class Position:
    """A place in HOLD₁: which file, how far into it, and how many lines were consumed."""

    file_index: int = 0
    offset: int = 0  # bytes into the file (JSONL, JSON array, CSV) or rows (Parquet)
    line: int = 0  # lines (rows, array elements) consumed so far in that file
    crc: int = 0  # crc32c of the file's bytes before `offset` (text files; 0 for Parquet)


@dataclass(frozen=True)
class QuarantineEntry:
    """One rejected record: where it came from, why, and where its original bytes are.

    A record of a text source is `size` bytes at `offset` in `source` (read again when the
    quarantine is written, so a large one is never held in memory); any other record carries
    its bytes in `record` (a Parquet row as JSON, or a transformed row whose position was lost).
    """

    source: str
    line: int | None
    offset: int | None
    reason: str
    format: RecordFormat = RecordFormat.JSONL
    size: int | None = None
    record: bytes | None = None


@dataclass(frozen=True)
class Spans:
    """The byte size of each record of a batch, by its offset (sorted): how a rejection found
    after parsing gets back to the record's original bytes."""

    offsets: array = field(default_factory=lambda: array("q"))
    sizes: array = field(default_factory=lambda: array("q"))

    def size_at(self, offset: int | None) -> int | None:
        """The size of the record that starts at `offset`, or None if no record does."""
        if offset is None:
            return None
        index = bisect_left(self.offsets, offset)
        found = index < len(self.offsets) and self.offsets[index] == offset
        return self.sizes[index] if found else None


def with_positions(
    frame: pl.DataFrame, lines: Sequence[int] | np.ndarray, offsets: Sequence[int] | np.ndarray
) -> pl.DataFrame:
    """`frame` with each record's source line and offset attached."""
    return frame.with_columns(
        pl.Series(LINE_COLUMN, lines, dtype=pl.Int64), pl.Series(OFFSET_COLUMN, offsets, dtype=pl.Int64)
    )


@dataclass(frozen=True)
class ParseChoice:
    """How a JSONL batch may be parsed. The exact path (one kind per field, bad records quarantined)
    decides every batch unless `fast`: then the batch is read as one block and, given `learnt`
    (the schema an earlier batch of the run was parsed with), parsed by pyarrow behind guards that
    leave any doubtful batch to the exact path (readers/fast_json.py)."""

    fast: bool = False
    learnt: pl.Schema | None = None


EXACT_PARSE = ParseChoice()


@dataclass(frozen=True)
class BatchRequest:
    """What one read of a text file asks: where it starts (its file index included) and how much at most."""

    path: str
    start: Position
    max_rows: int
    max_record_bytes: int
    text_columns: frozenset[str] = frozenset()  # column names read as text whatever they hold
    max_bytes: int | None = None  # about how many input bytes, besides max_rows
    parse: ParseChoice = EXACT_PARSE  # JSONL: whether the fast parse may try first
    null_markers: frozenset[str] = frozenset()  # CSV: field text that means null (besides an empty field)


@dataclass
class RawBatch:
    """What a reader returns: good records as a frame, rejected ones, and the span read."""

    frame: pl.DataFrame
    quarantined: list[QuarantineEntry] = field(default_factory=list)
    start: Position = Position()
    end: Position = Position()
    records_read: int = 0  # good + rejected records consumed from the input
    bytes_read: int = 0
    exhausted: bool = False  # the file has nothing after `end`
    file_size: int | None = None  # the file's size and mtime when its end was reached
    file_mtime_ns: int | None = None
    format: RecordFormat = RecordFormat.JSONL
    spans: Spans = field(default_factory=Spans)  # text formats: every record's size, by offset
    schema: pl.Schema | None = None  # JSONL: the schema its records were parsed with (what a later batch may assume)
    fast: bool = False  # JSONL: parsed by the guarded fast parse (the exact path would have given the same)
