"""JSONL / NDJSON: one batch from a byte offset, bad lines quarantined with their position.

Each field keeps one kind in a batch (see json_kinds): a record whose field holds another
kind than the others' goes to quarantine instead of being converted to fit.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import polars as pl

from bqhold.tasks.core.readers.isolate import Parser, Screen, text_batch
from bqhold.tasks.core.readers.json_kinds import Screening, parse_strictly
from bqhold.tasks.core.readers.lines import read_records
from bqhold.tasks.core.readers.nesting import nesting_problem
from bqhold.tasks.core.records import BatchRequest, RawBatch

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


def read_jsonl_batch(request: BatchRequest) -> RawBatch:
    """Read up to `max_rows` records (about `max_bytes`) of a JSONL file from `start`; `text_columns`
    take any scalar as text."""
    start = request.start
    with open(request.path, "rb") as handle:
        chunk = read_records(
            handle, start.offset, start.line, request.max_rows, request.max_record_bytes, max_bytes=request.max_bytes
        )
    return text_batch(
        request,
        chunk,
        strict_parser(request.text_columns),
        json_screen(request.text_columns),
        unparseable=nesting_problem,
    )
