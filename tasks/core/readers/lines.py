"""Bounded record reading shared by the JSONL and CSV readers.

Reads at most `max_rows` records (and about `max_bytes`) from a byte offset, never holding
more than `max_record_bytes` of one record: a longer record is skipped to its end in chunks and
reported with its position and size, whatever its size. With `quoted=True` (CSV) a record goes
on while it has an open double quote (RFC 4180 doubles quotes inside fields, so parity tells),
also when skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

_SKIP_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass
class LineChunk:
    """Records read from one span of a file, with their line numbers and byte offsets."""

    records: list[bytes] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)  # 1-based first line of each record
    offsets: list[int] = field(default_factory=list)  # byte offset of each record
    oversized: list[tuple[int, int, int]] = field(default_factory=list)  # line, offset, size
    end_offset: int = 0
    end_line: int = 0
    exhausted: bool = False


class _Cursor:
    """A binary file read line by line, counting bytes and lines."""

    def __init__(self, handle: BinaryIO, offset: int, line: int, limit: int) -> None:
        self.handle, self.offset, self.line, self.limit = handle, offset, line, limit
        handle.seek(offset)
        if offset == 0 and handle.read(len(_BOM)) != _BOM:
            handle.seek(0)
        elif offset == 0:
            self.offset = len(_BOM)

    def piece(self) -> bytes:
        """Up to `limit` bytes of the next line (the whole line if it is shorter)."""
        raw = self.handle.readline(self.limit)
        self.offset += len(raw)
        if raw.endswith(b"\n") or (raw and len(raw) < self.limit):
            self.line += 1
        return raw

    def rest_of_line(self) -> tuple[int, int]:
        """Skip to the end of the current line; return (bytes skipped, quotes seen)."""
        skipped = quotes = 0
        while True:
            chunk = self.handle.readline(_SKIP_CHUNK)
            skipped += len(chunk)
            quotes += chunk.count(b'"')
            if not chunk or chunk.endswith(b"\n"):
                self.offset += skipped
                self.line += 1  # the line whose first piece was not counted
                return skipped, quotes


def _read_one(cursor: _Cursor, raw: bytes, max_record_bytes: int, quoted: bool) -> tuple[list[bytes], int, bool]:
    """The record starting with piece `raw` (already counted): its pieces (none if oversized),
    its size, and whether it is oversized."""
    kept: list[bytes] = []
    size, oversized, open_quote = 0, False, False
    while True:
        if not raw:
            return kept, size, oversized
        size += len(raw)
        quotes = raw.count(b'"')
        if not raw.endswith(b"\n") and len(raw) >= cursor.limit:
            skipped, more_quotes = cursor.rest_of_line()
            size += skipped
            quotes += more_quotes
            oversized = True
        oversized = oversized or size > max_record_bytes
        if oversized:
            kept.clear()
        else:
            kept.append(raw)
        open_quote = quoted and (open_quote ^ (quotes % 2 == 1))
        if not open_quote:
            return kept, size, oversized
        raw = cursor.piece()


def read_records(
    handle: BinaryIO,
    offset: int,
    line: int,
    max_rows: int,
    max_record_bytes: int,
    quoted: bool = False,
    max_bytes: int | None = None,
) -> LineChunk:
    """Read up to `max_rows` non-blank records starting at `offset` (`line` lines done); stop
    early once the records read hold `max_bytes` (at least one record is always read)."""
    cursor = _Cursor(handle, offset, line, max_record_bytes + 1)
    chunk = LineChunk()
    records, lines, offsets = chunk.records, chunk.lines, chunk.offsets
    readline, limit = handle.readline, cursor.limit
    offset, line = cursor.offset, cursor.line
    stop_at = offset + max_bytes if max_bytes is not None else None
    while len(records) < max_rows and (stop_at is None or offset < stop_at):
        raw = readline(limit)
        size = len(raw)
        if size and raw[-1:] == b"\n" and size <= max_record_bytes and not (quoted and raw.count(b'"') & 1):
            # The common case, kept tight: one complete line is one record.
            line += 1
            if not raw.isspace():
                records.append(raw)
                lines.append(line)
                offsets.append(offset)
            offset += size
            continue
        if not raw:
            chunk.exhausted = True
            break
        cursor.offset, cursor.line = offset + size, line
        if raw[-1:] == b"\n" or size < limit:
            cursor.line += 1
        pieces, total, oversized = _read_one(cursor, raw, max_record_bytes, quoted)
        if oversized:
            chunk.oversized.append((line + 1, offset, total))
        elif not b"".join(pieces).isspace():
            records.append(pieces[0] if len(pieces) == 1 else b"".join(pieces))
            lines.append(line + 1)
            offsets.append(offset)
        offset, line = cursor.offset, cursor.line
    chunk.end_offset, chunk.end_line = offset, line
    if not chunk.exhausted and not handle.read(1):
        chunk.exhausted = True
    return chunk
