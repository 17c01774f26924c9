"""JSONL / NDJSON: one batch from a byte offset, bad lines quarantined with their position."""

from __future__ import annotations

import io
import json

import polars as pl

from tasks.core.readers.isolate import text_batch
from tasks.core.readers.lines import read_records
from tasks.core.readers.nesting import nesting_problem
from tasks.core.records import Position, RawBatch


def parse_records(records: list[bytes]) -> pl.DataFrame:
    """One frame from JSON object records, one per line."""
    return pl.read_ndjson(io.BytesIO(b"".join(records)), infer_schema_length=None)


_JSON_KINDS = {
    list: "an array",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "a boolean",
    type(None): "null",
}


def line_problem(raw: bytes) -> str | None:
    """Why one line is not a JSON object, or None when it is one."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return f"not valid UTF-8 (byte {exc.start} of the line)"
    text = text.rstrip("\r\n")
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"malformed JSON: {exc.msg} at character {exc.pos + 1}"
    if not isinstance(value, dict):
        return f"expected a JSON object, found {_JSON_KINDS.get(type(value), 'a value')}"
    return None


def read_jsonl_batch(
    path: str, file_index: int, start: Position, max_rows: int, max_record_bytes: int, max_bytes: int | None = None
) -> RawBatch:
    """Read up to `max_rows` records (about `max_bytes`) of a JSONL file from `start`."""
    with open(path, "rb") as handle:
        chunk = read_records(handle, start.offset, start.line, max_rows, max_record_bytes, max_bytes=max_bytes)
    return text_batch(
        path, file_index, start, chunk, parse_records, line_problem, max_record_bytes, screen=nesting_problem
    )
