"""A `.json` file holding one top-level array: its elements are the records.

A byte scan finds where each element starts and ends (it tracks strings and bracket depth, and
looks at nothing else), so a batch starts at a byte offset like a JSONL batch and memory holds
one batch, never the file: an array of 5,000 records on one line is 5,000 records. Each element
is then parsed like a JSONL line; one larger than --max-record-bytes is skipped by the scan and
quarantined without being held, one nested too deeply is quarantined without being parsed.

Positions: `offset` is in bytes; `line` counts elements, so a record's "line" is its 1-based
element index (a one-line file would otherwise name line 1 for every record).
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.readers.isolate import text_batch
from bqhold.tasks.core.readers.jsonl import json_screen, strict_parser
from bqhold.tasks.core.readers.lines import LineChunk
from bqhold.tasks.core.readers.nesting import nesting_problem
from bqhold.tasks.core.records import BatchRequest, Position, QuarantineEntry, RawBatch, RecordFormat

# Everything up to the next bracket (or, between elements, the next comma), whole strings
# included: one regex call per bracket, not one per byte or token.
_SKIP_INSIDE = re.compile(rb'(?:[^"\[\]{}]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
_SKIP_BETWEEN = re.compile(rb'(?:[^"\[\]{},]++|"[^"\\]*+(?:\\.[^"\\]*+)*+")*+', re.DOTALL)
_STRING_BODY = re.compile(rb'[^"\\]*(?:\\.[^"\\]*)*', re.DOTALL)
_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_SPACE = re.compile(rb"[ \t\r\n]*")
_WINDOW = 1 << 20  # bytes one regex call may look at: a huge element is scanned in steps
_RELEASE = 64 << 20  # scanned mapped pages are handed back every this many bytes
_QUOTE, _COMMA = ord('"'), ord(",")
_OPENERS, _CLOSERS = frozenset(b"[{"), frozenset(b"]}")
_BOM = b"\xef\xbb\xbf"
_LINE_BREAKS_AS_SPACES = bytes.maketrans(b"\r\n", b"  ")


def starts_with_array(path: str) -> bool:
    """True if the first byte of `path` that is not a byte-order mark or blank is `[`."""
    with open(path, "rb") as handle:
        head = handle.read(len(_BOM))
        if head != _BOM:
            handle.seek(0)
        while block := handle.read(1 << 16):
            text = block.lstrip(b" \t\r\n")
            if text:
                return text[:1] == b"["
    return False


@dataclass
class _Scan:
    """A cursor over a memory-mapped file that knows JSON strings and brackets."""

    buf: mmap.mmap
    size: int
    released: int = 0

    def space(self, pos: int) -> int:
        """The first offset at or after `pos` that is not JSON whitespace."""
        while pos < self.size:
            limit = min(self.size, pos + _WINDOW)
            end = _SPACE.match(self.buf, pos, limit).end()
            if end < limit:
                return end
            pos = end
        return self.size

    def element_end(self, pos: int) -> tuple[int, bool]:
        """Where the element at `pos` ends (its comma or the array's `]`), and whether the
        array ends there (also when the file ends first)."""
        depth, size = 0, self.size
        while pos < size:
            limit = min(size, pos + _WINDOW)
            pos = (_SKIP_INSIDE if depth else _SKIP_BETWEEN).match(self.buf, pos, limit).end()
            if pos >= limit:
                pos = self._passed(pos)
                continue
            byte = self.buf[pos]
            if byte == _QUOTE:  # a string the window cut short
                pos = self._string_end(pos + 1)
                continue
            if byte in _OPENERS:
                depth += 1
            elif byte in _CLOSERS:
                if depth == 0:
                    return pos, True
                depth -= 1
            elif depth == 0:  # a comma between elements
                return pos, False
            pos += 1
        return self.size, True

    def _string_end(self, pos: int) -> int:
        """The offset just after the string whose body starts at `pos`."""
        while pos < self.size:
            limit = min(self.size, pos + _WINDOW)
            pos = _STRING_BODY.match(self.buf, pos, limit).end()
            if pos >= limit:
                pos = self._passed(pos)
                continue
            if self.buf[pos] == _QUOTE:
                return pos + 1
            pos += 2  # a backslash whose escaped byte lies past the window
        return self.size

    def _passed(self, pos: int) -> int:
        """Note that everything before `pos` is scanned; hand long-scanned pages back."""
        if pos - self.released >= _RELEASE:
            start = self.released - self.released % mmap.PAGESIZE
            end = pos - pos % mmap.PAGESIZE
            self.buf.madvise(mmap.MADV_DONTNEED, start, end - start)
            self.released = end
        return pos


def _line_break_in_string(raw: bytes) -> str | None:
    """Why an element with a raw line break inside a string is not JSON (pretty-printed
    elements have line breaks between tokens, which are fine)."""
    if b"\n" not in raw and b"\r" not in raw:
        return None
    outside = _STRING.sub(b"", raw)
    if outside.count(b"\n") == raw.count(b"\n") and outside.count(b"\r") == raw.count(b"\r"):
        return None
    return "malformed JSON: a line break inside a string"


def _element_problem(raw: bytes) -> str | None:
    return nesting_problem(raw) or _line_break_in_string(raw)


def _as_line(raw: bytes) -> bytes:
    # Line breaks outside strings are JSON whitespace (inside strings they were refused above),
    # so each element becomes one JSONL line.
    return raw.translate(_LINE_BREAKS_AS_SPACES) + b"\n"


def _after_opening_bracket(scan: _Scan, path: str) -> int:
    """The offset after the `[` that opens the array (past a byte-order mark and blanks)."""
    pos = scan.space(len(_BOM) if scan.buf[: len(_BOM)] == _BOM else 0)
    if pos >= scan.size or scan.buf[pos] != ord("["):
        raise InputError(f"{path}: not a JSON array (it must start with '[')")
    return pos + 1


def split_elements(
    path: str, start: Position, max_rows: int, max_record_bytes: int, max_bytes: int | None = None
) -> tuple[LineChunk, list[QuarantineEntry]]:
    """The next elements of a JSON array file from `start`, as a chunk of records (plus what
    follows the array's end, if anything but blanks does)."""
    chunk = LineChunk()
    trailing: list[QuarantineEntry] = []
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        scan = _Scan(buf, len(buf))
        pos, count = start.offset, start.line
        if pos == 0:
            pos = _after_opening_bracket(scan, path)
        while len(chunk.records) < max_rows and (max_bytes is None or pos < start.offset + max_bytes):
            pos = scan.space(pos)
            if pos >= scan.size or buf[pos] in _CLOSERS:  # the end (a trailing comma is forgiven)
                pos, chunk.exhausted = pos + 1, True
                break
            first = pos
            pos, closes = scan.element_end(first)
            count += 1
            if pos - first > max_record_bytes:
                chunk.oversized.append((count, first, pos - first))
            else:
                chunk.records.append(buf[first:pos].rstrip(b" \t\r\n"))
                chunk.lines.append(count)
                chunk.offsets.append(first)
            pos += 1
            if closes:
                chunk.exhausted = True
                break
        pos = min(pos, scan.size)
        if chunk.exhausted:
            after = scan.space(pos)
            if after < scan.size:
                count += 1
                reason = "content after the array's closing bracket"
                trailing.append(QuarantineEntry(path, count, after, reason, RecordFormat.JSON_ARRAY, scan.size - after))
            pos = scan.size
    chunk.end_offset, chunk.end_line = pos, count
    return chunk, trailing


def read_json_array_batch(request: BatchRequest) -> RawBatch:
    """Read up to `max_rows` elements (about `max_bytes`) of a JSON array file from `start`;
    `text_columns` take any scalar as text."""
    chunk, trailing = split_elements(
        request.path, request.start, request.max_rows, request.max_record_bytes, request.max_bytes
    )
    batch = text_batch(
        request,
        chunk,
        strict_parser(request.text_columns, _as_line),
        json_screen(request.text_columns, _as_line),
        RecordFormat.JSON_ARRAY,
        unparseable=_element_problem,
    )
    batch.quarantined += trailing
    batch.records_read += len(trailing)
    return batch
