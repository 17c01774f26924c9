"""Bounded line reading shared by the JSONL and CSV readers.

Reads at most `max_rows` records from a byte offset, never holding more than one record of
`max_record_bytes`: a longer line is skipped in chunks and reported, whatever its size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import BinaryIO

_SKIP_CHUNK = 1 << 20


@dataclass
class LineChunk:
    """Records read from one span of a file, with their line numbers and byte offsets."""

    records: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based first line of each record
    offsets: list[int] = field(default_factory=list)  # byte offset of each record
    oversized: list[tuple[int, int, int, bytes]] = field(default_factory=list)  # line, offset, size, head
    end_offset: int = 0
    end_line: int = 0
    exhausted: bool = False


def _skip_rest_of_line(handle: BinaryIO) -> int:
    """Consume the rest of an over-long line; return how many bytes were skipped."""
    skipped = 0
    while True:
        chunk = handle.readline(_SKIP_CHUNK)
        skipped += len(chunk)
        if not chunk or chunk.endswith(b"\n"):
            return skipped


def read_records(
    handle: BinaryIO,
    offset: int,
    line: int,
    max_rows: int,
    max_record_bytes: int,
    continues: Callable[[bytes], bool] | None = None,
) -> LineChunk:
    """Read up to `max_rows` non-blank records starting at `offset` (line `line` done).

    `continues(record_so_far)` says whether a record goes on to the next line (CSV quotes).
    """
    handle.seek(offset)
    chunk = LineChunk()
    readline = handle.readline
    limit = max_record_bytes + 1
    while len(chunk.records) < max_rows:
        start_offset, start_line = offset, line + 1
        raw = readline(limit)
        if not raw:
            chunk.exhausted = True
            break
        line += 1
        offset += len(raw)
        while continues is not None and len(raw) <= max_record_bytes and raw.endswith(b"\n") and continues(raw):
            more = readline(limit)
            if not more:
                break
            line += 1
            offset += len(more)
            raw += more
        if len(raw) > max_record_bytes:
            size = len(raw) if raw.endswith(b"\n") else len(raw) + _skip_rest_of_line(handle)
            offset = start_offset + size
            chunk.oversized.append((start_line, start_offset, size, raw[:256]))
            continue
        if not raw.strip():
            continue
        chunk.records.append(raw)
        chunk.lines.append(start_line)
        chunk.offsets.append(start_offset)
    chunk.end_offset, chunk.end_line = offset, line
    if not chunk.exhausted and not handle.read(1):
        chunk.exhausted = True
    return chunk
