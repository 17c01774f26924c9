"""Block reads of a line-per-record file: about one `read()` per batch, split at newlines with numpy.

`read_records` (lines.py) reads a line at a time and copies each into a Python bytes object,
which costs more than parsing them. A block holds the batch's bytes once, with every line's
start and end as arrays; a parser takes the bytes whole (pyarrow without a copy) and the
positions are computed, not counted. Anything unusual in the block (a BOM, a line that is not
a record or could be blank, a record over the size limit) answers None: the caller then reads
the batch with `read_records`, whose positions a block reproduces exactly where it answers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

import numpy as np

from bqhold.tasks.core.readers.lines import LineChunk

_BOM = b"\xef\xbb\xbf"
_PROBE_BYTES = 256 * 1024  # read first, to learn the bytes per line before the one large read
_MARGIN = 1.05  # the large read asks a little more than the probe predicts, to need no second one
# A line starting with one of these may be blank, which `read_records` skips: left to it.
_SCAN_BYTES = 4 * 2**20
_SPACE = np.frombuffer(b" \t\n\r\x0b\x0c", dtype=np.uint8)


@dataclass(frozen=True)
class LineBlock:
    """Whole lines of a file, one record each: the bytes and where each line starts and ends."""

    data: bytearray  # the lines from the first one's start; bytes after the last one's end are not the block's
    starts: np.ndarray  # int64: where each line starts in `data`
    ends: np.ndarray  # int64: where each line ends in `data` (after its newline, if it has one)
    offset: int  # the file offset of data[0]
    line: int  # lines of the file before the first one
    exhausted: bool  # nothing follows the block in the file

    @property
    def count(self) -> int:
        """How many lines (records) the block holds."""
        return len(self.starts)

    @property
    def size(self) -> int:
        """The block's bytes: from its first line's start to its last line's end."""
        return int(self.ends[-1])

    def view(self) -> memoryview:
        """The block's bytes, without a copy."""
        if self.released:
            raise ValueError("the block's bytes were released")
        return memoryview(self.data)[: self.size]

    @property
    def released(self) -> bool:
        """Whether the bytes were let go (positions and counts remain)."""
        return len(self.data) < self.size

    def release(self) -> None:
        """Let the bytes go once parsed (a batch is then not held twice while its frame is made);
        nothing may still view them."""
        self.data.clear()

    def offsets(self) -> np.ndarray:
        """The file offset of each record."""
        return self.starts + self.offset

    def lines(self) -> np.ndarray:
        """The 1-based line number of each record."""
        return np.arange(self.line + 1, self.line + 1 + self.count, dtype=np.int64)

    def sizes(self) -> np.ndarray:
        """Each record's size in bytes, its line break included."""
        return self.ends - self.starts

    def chunk(self) -> LineChunk:
        """The block as `read_records` would have read it: one bytes object per record."""
        view = self.view()
        records = [bytes(view[start:end]) for start, end in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]
        return LineChunk(
            records=records,
            lines=self.lines().tolist(),
            offsets=self.offsets().tolist(),
            end_offset=self.offset + self.size,
            end_line=self.line + self.count,
            exhausted=self.exhausted,
        )


def _read_more(handle: BinaryIO, data: bytearray, want: int) -> int:
    """Read up to `want` bytes onto the end of `data`, straight into it (a read() then += would
    hold them twice for a moment); how many came."""
    start = len(data)
    data += bytes(want)  # zero pages: memory only once the read fills them
    with memoryview(data) as whole, whole[start:] as free:
        got = handle.readinto(free) or 0
    del data[start + got :]
    return got


def _read_until(handle: BinaryIO, max_rows: int, stop_at: int, max_record_bytes: int) -> tuple[bytearray, bool]:
    """Bytes from the handle's position holding `max_rows` whole lines, or the line that reaches
    `stop_at` bytes, or the end of the file (then True); a probe, then mostly one read sized from it."""
    data = bytearray(handle.read(min(_PROBE_BYTES, stop_at)))
    newlines = data.count(b"\n")
    while data:
        last = data.rfind(b"\n")
        if newlines >= max_rows or last + 1 >= stop_at or len(data) - last - 1 > max_record_bytes:
            return data, False  # (a line over the limit: the caller leaves the span to read_records)
        per_line = len(data) / max(1, newlines)
        predicted = int(per_line * (max_rows - newlines) * _MARGIN)
        # Never far beyond stop_at, and growing geometrically while a long line is read.
        want = max(min(predicted, stop_at - len(data)), len(data) // 2, 4096)
        start = len(data)
        if not _read_more(handle, data, want):
            return data, True
        newlines += data.count(b"\n", start)
    return data, True


def byte_positions(buffer: np.ndarray, values: tuple[int, ...]) -> np.ndarray:
    """Where any byte of `values` occurs in `buffer` (int64), found a slice at a time, so the
    scan's temporary masks stay a few MB however large the block (whole-block masks cost as
    much as the block again, each)."""
    found = [np.zeros(0, np.int64)]
    for start in range(0, len(buffer), _SCAN_BYTES):
        piece = buffer[start : start + _SCAN_BYTES]
        mask = piece == values[0]
        for value in values[1:]:
            mask |= piece == value
        found.append(np.flatnonzero(mask).astype(np.int64) + start)
    return np.concatenate(found)


def read_block(
    handle: BinaryIO, offset: int, line: int, max_rows: int, max_record_bytes: int, max_bytes: int | None
) -> LineBlock | None:
    """The lines `read_records` would return from `offset` (`line` lines done), as a block; None
    when the span holds anything it treats specially (a BOM, blank-looking or oversized lines)."""
    handle.seek(offset)
    stop_at = max_bytes if max_bytes is not None else 1 << 62
    data, at_end = _read_until(handle, max_rows, stop_at, max_record_bytes)
    if offset == 0 and data.startswith(_BOM):
        return None
    buffer = np.frombuffer(data, dtype=np.uint8)
    ends = byte_positions(buffer, (ord("\n"),)) + 1
    if at_end and data and data[-1:] != b"\n":
        ends = np.append(ends, len(data))  # the file's last line, without a line break
    starts = np.concatenate((np.zeros(1, np.int64), ends[:-1]))
    # `read_records` reads a line while it has fewer than max_rows records and has not reached stop_at.
    keep = min(max_rows, int(np.searchsorted(starts, stop_at, side="left")), len(ends))
    starts, ends = starts[:keep], ends[:keep]
    if not keep or (ends - starts > max_record_bytes).any() or np.isin(buffer[starts], _SPACE).any():
        return None
    del buffer  # a view of `data`: released, so the block owns its bytes alone
    end = int(ends[-1])
    if keep < max_rows and end < stop_at and not (at_end and end == len(data)):
        return None  # the batch goes on past what was read: a line over the limit follows
    exhausted = at_end and end == len(data)
    if not at_end and end == len(data):
        exhausted = not handle.read(1)
    return LineBlock(data, starts, ends, offset, line, exhausted)
