"""Find the few records that spoil a batch: parse what passes, bisect around what fails.

A batch is parsed in one go (after records that must not be parsed at all, too deep say, are
set aside). When that fails, a screen looks at each record (is it well formed? does it agree
with the others?) and names the parser for the rest; records that still fail are found by
bisection: k bad records cost O(k log n) extra parses, not one per record. The parts are all
parsed with that one parser and so have one schema: merging them never converts a value to fit
another part's type.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable

import polars as pl

from bqhold.tasks.core.readers.lines import LineChunk
from bqhold.tasks.core.records import (
    LINE_COLUMN,
    OFFSET_COLUMN,
    BatchRequest,
    Position,
    QuarantineEntry,
    RawBatch,
    RecordFormat,
    Spans,
    with_positions,
)

Parser = Callable[[list[bytes]], pl.DataFrame]
Problem = Callable[[bytes], str | None]
# Given a batch's records: the ones to quarantine (index -> reason) and the parser for the rest.
Screen = Callable[[list[bytes]], tuple[dict[int, str], Parser]]


def empty_frame() -> pl.DataFrame:
    """A batch with no good records."""
    return pl.DataFrame(schema={LINE_COLUMN: pl.Int64, OFFSET_COLUMN: pl.Int64})


class Isolator:
    """Merges records that parse together; quarantines each record that cannot."""

    def __init__(self, source: str, chunk: LineChunk, parse: Parser, fmt: RecordFormat) -> None:
        self.source, self.chunk, self.parse, self.format = source, chunk, parse, fmt
        self.frame: pl.DataFrame | None = None
        self.rejected: list[QuarantineEntry] = []

    def add(self, indexes: list[int]) -> None:
        """Parse the records at `indexes` and merge them into the batch."""
        try:
            part = self._parsed(indexes)
        except (pl.exceptions.PolarsError, ValueError) as exc:
            self._split_or_reject(indexes, "cannot be read", exc)
            return
        try:
            self.frame = part if self.frame is None else pl.concat([self.frame, part], how="diagonal")
        except (pl.exceptions.PolarsError, ValueError) as exc:
            self._split_or_reject(indexes, "a field's type clashes with earlier records", exc)

    def parse_all(self, indexes: list[int]) -> bool:
        """Parse the records at `indexes` in one go; False (nothing kept) if that fails."""
        try:
            self.frame = self._parsed(indexes)
            return True
        except (pl.exceptions.PolarsError, ValueError):
            return False

    def screen(self, indexes: list[int], problem: Problem) -> list[int]:
        """The indexes whose record has no `problem`; the others are quarantined."""
        kept = []
        for index in indexes:
            reason = problem(self.chunk.records[index])
            if reason is None:
                kept.append(index)
            else:
                self.reject(index, reason)
        return kept

    def reject(self, index: int, reason: str) -> None:
        """Quarantine the record at `index`."""
        chunk = self.chunk
        self.rejected.append(
            QuarantineEntry(
                self.source, chunk.lines[index], chunk.offsets[index], reason, self.format, len(chunk.records[index])
            )
        )

    def result(self) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
        """The merged good records and the rejected ones, in source order."""
        self.rejected.sort(key=lambda entry: entry.line or 0)
        return (self.frame if self.frame is not None else empty_frame()), self.rejected

    def _parsed(self, indexes: list[int]) -> pl.DataFrame:
        chunk = self.chunk
        everything = len(indexes) == len(chunk.records)
        records = chunk.records if everything else [chunk.records[i] for i in indexes]
        frame = self.parse(records)
        if frame.height != len(records):
            raise ValueError(f"parsed {frame.height} records out of {len(records)}")
        if everything:
            return with_positions(frame, chunk.lines, chunk.offsets)
        return with_positions(frame, [chunk.lines[i] for i in indexes], [chunk.offsets[i] for i in indexes])

    def _split_or_reject(self, indexes: list[int], reason: str, exc: Exception) -> None:
        if len(indexes) == 1:
            self.reject(indexes[0], f"{reason}: {str(exc).splitlines()[0]}")
            return
        middle = len(indexes) // 2
        self.add(indexes[:middle])
        self.add(indexes[middle:])


def line_screen(line_problem: Problem, parse: Parser) -> Screen:
    """A screen that checks each record on its own, then parses the rest as the batch was."""

    def screen(records: list[bytes]) -> tuple[dict[int, str], Parser]:
        problems = {index: problem for index, raw in enumerate(records) if (problem := line_problem(raw))}
        return problems, parse

    return screen


def parse_or_isolate(
    source: str,
    chunk: LineChunk,
    parse: Parser,
    screen: Screen,
    fmt: RecordFormat = RecordFormat.JSONL,
    unparseable: Problem | None = None,
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Parse a chunk in one go (after `unparseable` set aside records that must not be parsed at
    all); if that fails, screen the records and isolate what still fails."""
    isolator = Isolator(source, chunk, parse, fmt)
    indexes = list(range(len(chunk.records)))
    if unparseable is not None:
        indexes = isolator.screen(indexes, unparseable)
    if not indexes or isolator.parse_all(indexes):
        return isolator.result()
    problems, isolator.parse = screen([chunk.records[index] for index in indexes])
    good = []
    for position, index in enumerate(indexes):
        if position in problems:
            isolator.reject(index, problems[position])
        else:
            good.append(index)
    if good:
        isolator.add(good)
    return isolator.result()


def text_batch(
    request: BatchRequest,
    chunk: LineChunk,
    parse: Parser,
    screen: Screen,
    fmt: RecordFormat = RecordFormat.JSONL,
    unparseable: Problem | None = None,
) -> RawBatch:
    """The RawBatch of a chunk of text records: good ones parsed, bad ones quarantined."""
    path, start, max_record_bytes = request.path, request.start, request.max_record_bytes
    frame, rejected = parse_or_isolate(path, chunk, parse, screen, fmt, unparseable)
    oversized = [
        QuarantineEntry(
            path, line, offset, f"record of {size:,} bytes exceeds the limit of {max_record_bytes:,}", fmt, size
        )
        for line, offset, size in chunk.oversized
    ]
    return RawBatch(
        frame=frame,
        quarantined=sorted(oversized + rejected, key=lambda entry: entry.line or 0),
        start=start,
        end=Position(start.file_index, chunk.end_offset, chunk.end_line),
        records_read=len(chunk.records) + len(chunk.oversized),
        bytes_read=chunk.end_offset - start.offset,
        exhausted=chunk.exhausted,
        format=fmt,
        spans=Spans(array("q", chunk.offsets), array("q", map(len, chunk.records))),
    )
