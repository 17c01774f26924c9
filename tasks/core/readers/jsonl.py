"""JSONL / NDJSON: one batch from a byte offset, bad lines quarantined with their position.

Each field keeps one kind in a batch (see json_kinds): a record whose field holds another
kind than the others' goes to quarantine instead of being converted to fit.
"""

from __future__ import annotations

import io
import json

import polars as pl

from tasks.core.readers.isolate import Parser, text_batch
from tasks.core.readers.json_kinds import Screening, parse_strictly
from tasks.core.readers.lines import read_records
from tasks.core.records import Position, RawBatch

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


def _with_schema(schema: dict[str, pl.DataType]) -> Parser:
    def parse(records: list[bytes]) -> pl.DataFrame:
        return pl.read_ndjson(io.BytesIO(b"".join(records)), schema=schema)

    return parse


def _screen(text: frozenset[str]):
    def screen(records: list[bytes]) -> tuple[dict[int, str], Parser]:
        """Each record decoded once: malformed ones and those whose kinds disagree are set aside."""
        screening, problems = Screening(text), {}
        for index, raw in enumerate(records):
            record, problem = decode(raw)
            if problem is None:
                screening.add(index, record)
            else:
                problems[index] = problem
        misfits, schema = screening.decide(lambda index: records[index])
        return problems | misfits, _with_schema(schema)

    return screen


def read_jsonl_batch(
    path: str,
    file_index: int,
    start: Position,
    max_rows: int,
    max_record_bytes: int,
    text_columns: frozenset[str] = frozenset(),
) -> RawBatch:
    """Read up to `max_rows` records of a JSONL file from `start`; `text_columns` take any scalar as text."""
    with open(path, "rb") as handle:
        chunk = read_records(handle, start.offset, start.line, max_rows, max_record_bytes)
    return text_batch(
        path,
        file_index,
        start,
        chunk,
        lambda records: parse_strictly(records, text_columns),
        _screen(text_columns),
        max_record_bytes,
    )
