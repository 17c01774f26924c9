"""Find the few records that spoil a batch: parse what passes, bisect around what fails.

A batch is parsed in one go. When that fails, a screen looks at each record (is it well
formed? does it agree with the others?) and names the parser for the rest; records that still
fail are found by bisection: k bad records cost O(k log n) extra parses, not one per record.
The parts are all parsed with that one parser and so have one schema: merging them never
converts a value to fit another part's type.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from tasks.core.readers.lines import LineChunk
from tasks.core.records import LINE_COLUMN, OFFSET_COLUMN, Position, QuarantineEntry, RawBatch, preview, with_positions

Parser = Callable[[list[bytes]], pl.DataFrame]
# Given a batch's records: the ones to quarantine (index -> reason) and the parser for the rest.
Screen = Callable[[list[bytes]], tuple[dict[int, str], Parser]]


def empty_frame() -> pl.DataFrame:
    """A batch with no good records."""
    return pl.DataFrame(schema={LINE_COLUMN: pl.Int64, OFFSET_COLUMN: pl.Int64})


class Isolator:
    """Merges records that parse together; quarantines each record that cannot."""

    def __init__(self, source: str, chunk: LineChunk, parse: Parser) -> None:
        self.source, self.chunk, self.parse = source, chunk, parse
        self.frame: pl.DataFrame | None = None
        self.rejected: list[QuarantineEntry] = []

    def add(self, indexes: list[int]) -> None:
        """Parse the records at `indexes` and merge them into the batch."""
        try:
            part = with_positions(
                self.parse([self.chunk.records[i] for i in indexes]),
                [self.chunk.lines[i] for i in indexes],
                [self.chunk.offsets[i] for i in indexes],
            )
        except (pl.exceptions.PolarsError, ValueError) as exc:
            self._split_or_reject(indexes, "cannot be read", exc)
            return
        try:
            self.frame = part if self.frame is None else pl.concat([self.frame, part], how="diagonal")
        except (pl.exceptions.PolarsError, ValueError) as exc:
            self._split_or_reject(indexes, "a field's type clashes with earlier records", exc)

    def reject(self, index: int, reason: str) -> None:
        """Quarantine the record at `index`."""
        self.rejected.append(
            QuarantineEntry(
                self.source,
                self.chunk.lines[index],
                self.chunk.offsets[index],
                reason,
                preview(self.chunk.records[index]),
            )
        )

    def result(self) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
        """The merged good records and the rejected ones, in source order."""
        self.rejected.sort(key=lambda entry: entry.line or 0)
        return (self.frame if self.frame is not None else empty_frame()), self.rejected

    def _split_or_reject(self, indexes: list[int], reason: str, exc: Exception) -> None:
        if len(indexes) == 1:
            self.reject(indexes[0], f"{reason}: {str(exc).splitlines()[0]}")
            return
        middle = len(indexes) // 2
        self.add(indexes[:middle])
        self.add(indexes[middle:])


def line_screen(line_problem: Callable[[bytes], str | None], parse: Parser) -> Screen:
    """A screen that checks each record on its own, then parses the rest as the batch was."""

    def screen(records: list[bytes]) -> tuple[dict[int, str], Parser]:
        problems = {index: problem for index, raw in enumerate(records) if (problem := line_problem(raw))}
        return problems, parse

    return screen


def parse_or_isolate(
    source: str, chunk: LineChunk, parse: Parser, screen: Screen
) -> tuple[pl.DataFrame, list[QuarantineEntry]]:
    """Parse a chunk in one go; if that fails, screen the records and isolate what still fails."""
    if not chunk.records:
        return empty_frame(), []
    try:
        frame = parse(chunk.records)
        if frame.height != len(chunk.records):
            raise ValueError(f"parsed {frame.height} records out of {len(chunk.records)}")
        return with_positions(frame, chunk.lines, chunk.offsets), []
    except (pl.exceptions.PolarsError, ValueError):
        pass
    problems, parse_rest = screen(chunk.records)
    isolator = Isolator(source, chunk, parse_rest)
    for index, problem in problems.items():
        isolator.reject(index, problem)
    good = [index for index in range(len(chunk.records)) if index not in problems]
    if good:
        isolator.add(good)
    return isolator.result()


def text_batch(
    path: str,
    file_index: int,
    start: Position,
    chunk: LineChunk,
    parse: Parser,
    screen: Screen,
    max_record_bytes: int,
) -> RawBatch:
    """The RawBatch of a chunk of text records: good ones parsed, bad ones quarantined."""
    frame, rejected = parse_or_isolate(path, chunk, parse, screen)
    oversized = [
        QuarantineEntry(
            path, line, offset, f"record of {size:,} bytes exceeds the limit of {max_record_bytes:,}", preview(head)
        )
        for line, offset, size, head in chunk.oversized
    ]
    return RawBatch(
        frame=frame,
        quarantined=sorted(oversized + rejected, key=lambda entry: entry.line or 0),
        start=start,
        end=Position(file_index, chunk.end_offset, chunk.end_line),
        records_read=len(chunk.records) + len(chunk.oversized),
        bytes_read=chunk.end_offset - start.offset,
        exhausted=chunk.exhausted,
    )
