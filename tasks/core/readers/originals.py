"""The original bytes of quarantined records, read back from their source when the quarantine is
written: small ones in hand, large ones as a span to stream, never held whole."""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from bqhold.tasks.core.readers.csv import read_header
from bqhold.tasks.core.records import QuarantineEntry, RecordFormat

_COPY_CHUNK = 1 << 20
_TAIL = 64  # bytes looked at to find where a large record's trailing line break or blanks start


@dataclass(frozen=True)
class ByteRange:
    """`size` bytes of `path` from `offset`: a record too large to hold."""

    path: str
    offset: int
    size: int

    def copy_to(self, out: BinaryIO) -> None:
        """Stream the span into `out`."""
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            remaining = self.size
            while remaining:
                block = handle.read(min(_COPY_CHUNK, remaining))
                if not block:
                    return
                out.write(block)
                remaining -= len(block)


def _trimmed(fmt: RecordFormat, tail: bytes) -> int:
    """How many bytes at the end of a record's span are not the record: the line break that
    ended a line, or the blanks after an array element."""
    if fmt is RecordFormat.JSON_ARRAY:
        return len(tail) - len(tail.rstrip(b" \t\r\n"))
    return 2 if tail.endswith(b"\r\n") else 1 if tail.endswith(b"\n") else 0


def original(entry: QuarantineEntry, inline_limit: int) -> bytes | ByteRange:
    """The record's original bytes when at most `inline_limit`, else the span that holds them."""
    if entry.record is not None:
        return entry.record
    if entry.size is None or entry.offset is None:
        return b""
    with open(entry.source, "rb") as handle:
        tail_start = entry.offset + max(0, entry.size - _TAIL)
        handle.seek(tail_start)
        size = entry.size - _trimmed(entry.format, handle.read(entry.offset + entry.size - tail_start))
        if size > inline_limit:
            return ByteRange(entry.source, entry.offset, size)
        handle.seek(entry.offset)
        return handle.read(size)


def csv_header(path: str) -> bytes:
    """The header record of a CSV file, without its line break."""
    with open(path, "rb") as handle:
        header, _, _ = read_header(handle, 1 << 20)
    return header[: len(header) - _trimmed(RecordFormat.CSV, header[-2:])]
