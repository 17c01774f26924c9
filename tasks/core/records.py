"""Value objects of the batch path: where a batch starts and ends, and what it rejected."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import polars as pl

LINE_COLUMN = "__line"  # 1-based source line (row for Parquet) of each record; never staged
OFFSET_COLUMN = "__offset"  # byte offset (row index for Parquet) of each record; never staged
QUARANTINE_REASON = "_quarantine_reason"  # a transform may set it to reject a row
INTERNAL_COLUMNS = frozenset({LINE_COLUMN, OFFSET_COLUMN, QUARANTINE_REASON})
_PREVIEW_CHARS = 2048


@dataclass(frozen=True)
class Position:
    """A place in HOLD₁: which file, how far into it, and how many lines were consumed."""

    file_index: int = 0
    offset: int = 0  # bytes into the file (JSONL, CSV) or rows (Parquet)
    line: int = 0  # lines (rows) consumed so far in that file
    crc: int = 0  # crc32c of the file's bytes before `offset` (text files; 0 for Parquet)


@dataclass(frozen=True)
class QuarantineEntry:
    """One rejected record: where it came from, why, and a bounded preview of it."""

    source: str
    line: int | None
    offset: int | None
    reason: str
    record: str

    def to_json(self) -> str:
        """One JSONL line for the quarantine file."""
        return json.dumps(
            {
                "source": self.source,
                "line": self.line,
                "offset": self.offset,
                "reason": self.reason,
                "record": self.record[:_PREVIEW_CHARS],
                "record_truncated": len(self.record) > _PREVIEW_CHARS,
            },
            ensure_ascii=False,
        )


def with_positions(frame: pl.DataFrame, lines: list[int], offsets: list[int]) -> pl.DataFrame:
    """`frame` with each record's source line and offset attached."""
    return frame.with_columns(
        pl.Series(LINE_COLUMN, lines, dtype=pl.Int64), pl.Series(OFFSET_COLUMN, offsets, dtype=pl.Int64)
    )


def preview(raw: bytes) -> str:
    """A printable, bounded preview of raw input bytes (invalid UTF-8 escaped)."""
    return raw[: _PREVIEW_CHARS + 1].decode("utf-8", errors="backslashreplace").rstrip("\r\n")


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
