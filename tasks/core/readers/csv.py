"""CSV: one batch of records from a byte offset; quoted fields may span lines.

The header is read again for every batch (one line), so a resumed run seeks straight to its
offset. Fields are read as text, then each column gets the type all its values have in the
batch (`02100` stays text: see schema.type_text_columns); the staging schema reconciles them
across batches.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

import polars as pl

from bqhold.tasks.core.flatten import column_name
from bqhold.tasks.core.readers.isolate import line_screen, text_batch
from bqhold.tasks.core.readers.lines import read_records
from bqhold.tasks.core.records import BatchRequest, RawBatch, RecordFormat
from bqhold.tasks.core.text_values import type_text_columns


def read_header(handle: BinaryIO, max_record_bytes: int) -> tuple[bytes, int, int]:
    """The header record, and the byte offset and line number where it ends."""
    chunk = read_records(handle, 0, 0, 1, max_record_bytes, quoted=True)
    header = chunk.records[0] if chunk.records else b""
    return header, chunk.end_offset, chunk.end_line


def read_csv_batch(request: BatchRequest) -> RawBatch:
    """Read up to `max_rows` records (about `max_bytes`) of a CSV file from `start` (offset 0:
    before the header); `text_columns` stay text whatever their values look like, a field that
    is one of `null_markers` (e.g. `NA`) is null like an empty one."""
    start, max_rows, max_record_bytes, max_bytes = (
        request.start,
        request.max_rows,
        request.max_record_bytes,
        request.max_bytes,
    )
    with open(request.path, "rb") as handle:
        header, header_end, header_line = read_header(handle, max_record_bytes)
        offset, line = (start.offset, start.line) if start.offset >= header_end else (header_end, header_line)
        chunk = read_records(handle, offset, line, max_rows, max_record_bytes, quoted=True, max_bytes=max_bytes)
    header_text = header.decode("utf-8", errors="replace")
    expected_fields = len(next(csv.reader([header_text]), []))

    def parse(records: list[bytes]) -> pl.DataFrame:
        body = header if header.endswith(b"\n") else header + b"\n"
        nulls = sorted(request.null_markers) or None
        return pl.read_csv(io.BytesIO(body + b"".join(records)), infer_schema=False, null_values=nulls)

    def record_problem(raw: bytes) -> str | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte {exc.start} of the record)"
        try:
            fields = len(next(csv.reader(io.StringIO(text, newline="")), []))
        except csv.Error as exc:
            return f"not valid CSV: {exc}"
        if fields > expected_fields:
            return f"expected {expected_fields} fields, found {fields}"
        return None

    screen = line_screen(record_problem, parse)
    batch = text_batch(request, chunk, parse, screen, RecordFormat.CSV)
    text = [name for name in batch.frame.columns if column_name(name) in request.text_columns]
    batch.frame = type_text_columns(batch.frame, text)
    return batch
