"""JSONL / NDJSON: one batch from a byte offset, bad lines quarantined with their position.

Each field keeps one kind in a batch (see json_kinds): a record whose field holds another
kind than the others' goes to quarantine instead of being converted to fit.
"""

from __future__ import annotations

import io
import json
from array import array
from collections.abc import Callable
from dataclasses import replace

import polars as pl

from bqhold.tasks.core.readers.blocks import LineBlock, read_block
from bqhold.tasks.core.readers.fast_json import fast_frame
from bqhold.tasks.core.readers.isolate import Parser, Screen, text_batch
from bqhold.tasks.core.readers.json_kinds import Screening, parse_strictly
from bqhold.tasks.core.readers.lines import LineChunk, read_records
from bqhold.tasks.core.readers.nesting import nesting_problem
from bqhold.tasks.core.records import (
    LINE_COLUMN,
    OFFSET_COLUMN,
    BatchRequest,
    Position,
    RawBatch,
    RecordFormat,
    Spans,
    with_positions,
)

_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def decode(raw: bytes) -> tuple[dict | None, str | None]:
    """The JSON object on one line, or why it is not one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not valid UTF-8 (byte {exc.start} of the line)"
    text = text.rstrip("\r\n")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"malformed JSON: {exc.msg} at character {exc.pos + 1}"
    if not isinstance(value, dict):
        return None, f"expected a JSON object, found {_JSON_KINDS.get(type(value), 'a value')}"
    return value, None


def line_problem(raw: bytes) -> str | None:
    """Why one line is not a JSON object, or None when it is one."""
    return decode(raw)[1]


def _as_is(raw: bytes) -> bytes:
    return raw


def strict_parser(text: frozenset[str], as_line: Callable[[bytes], bytes] = _as_is) -> Parser:
    """The batch parser: one kind per field, `text` fields read as text (see json_kinds)."""
    return lambda records: parse_strictly([as_line(raw) for raw in records], text)


def json_screen(text: frozenset[str], as_line: Callable[[bytes], bytes] = _as_is) -> Screen:
    """A screen that decodes each record once: malformed ones and those whose kinds disagree
    with the others' are set aside, and the rest is parsed with the schema they agree on."""

    def screen(records: list[bytes]) -> tuple[dict[int, str], Parser]:
        screening, problems = Screening(text), {}
        for index, raw in enumerate(records):
            record, problem = decode(as_line(raw))
            if problem is None:
                screening.add(index, record)
            else:
                problems[index] = problem
        misfits, schema = screening.decide(lambda index: records[index])

        def parse(chosen: list[bytes]) -> pl.DataFrame:
            return pl.read_ndjson(io.BytesIO(b"".join(as_line(raw) for raw in chosen)), schema=schema)

        return problems | misfits, parse

    return screen


def _exact_batch(request: BatchRequest, chunk: LineChunk) -> RawBatch:
    """The batch as the exact path parses it: one kind per field, bad records quarantined."""
    text = request.text_columns
    raw = text_batch(request, chunk, strict_parser(text), json_screen(text), unparseable=nesting_problem)
    return replace(raw, schema=parsed_schema(raw.frame))


def _fast_batch(request: BatchRequest, block: LineBlock, frame: pl.DataFrame) -> RawBatch:
    """The batch of a block the fast parse read: every record good, positions computed."""
    start, offsets, sizes = request.start, block.offsets(), block.sizes()
    return RawBatch(
        frame=with_positions(frame, block.lines(), offsets),
        start=start,
        end=Position(start.file_index, block.offset + block.size, block.line + block.count),
        records_read=block.count,
        bytes_read=block.offset + block.size - start.offset,
        exhausted=block.exhausted,
        format=RecordFormat.JSONL,
        spans=Spans(array("q", offsets.tobytes()), array("q", sizes.tobytes())),
        schema=parsed_schema(frame),
        fast=True,
    )


def parsed_schema(frame: pl.DataFrame) -> pl.Schema:
    """The schema a batch's records were parsed with: its frame's, positions aside."""
    return pl.Schema((name, dtype) for name, dtype in frame.schema.items() if name not in (LINE_COLUMN, OFFSET_COLUMN))


def _read(request: BatchRequest) -> LineBlock | LineChunk:
    """The batch's lines: as one block when a fast parse may follow and the block reader takes
    them, else line by line."""
    start = request.start
    with open(request.path, "rb") as handle:
        if request.parse.fast:
            block = read_block(
                handle, start.offset, start.line, request.max_rows, request.max_record_bytes, request.max_bytes
            )
            if block is not None:
                return block
        return read_records(
            handle, start.offset, start.line, request.max_rows, request.max_record_bytes, max_bytes=request.max_bytes
        )


def read_jsonl_batch(request: BatchRequest) -> RawBatch:
    """Read up to `max_rows` records (about `max_bytes`) of a JSONL file from `start`; `text_columns`
    take any scalar as text. With `parse.fast` the batch is read as one block and parsed fast when
    the guards find nothing doubtful (see fast_json): the same records, positions and frame."""
    lines = _read(request)
    if isinstance(lines, LineChunk):
        return _exact_batch(request, lines)
    learnt = request.parse.learnt
    frame = fast_frame(lines, learnt, request.text_columns) if learnt is not None else None
    if frame is not None:
        return _fast_batch(request, lines, frame)
    if lines.released:  # the fast parse doubted what pyarrow had parsed: the same lines again
        lines = _read(request)
    return _exact_batch(request, lines if isinstance(lines, LineChunk) else lines.chunk())
