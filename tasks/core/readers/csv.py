"""CSV: one batch of records from a byte offset; quoted fields may span lines.

The header is read again for every batch (one line), so a resumed run seeks straight to its
offset. Types are inferred per batch; the staging schema reconciles them across batches.
"""

from __future__ import annotations

import csv
import io

import polars as pl

from tasks.core.readers.isolate import text_batch
from tasks.core.readers.lines import read_records
from tasks.core.records import Position, RawBatch


def _open_quote(record: bytes) -> bool:
    """True while a record has an unclosed quote (RFC 4180 escapes quotes by doubling)."""
    return record.count(b'"') % 2 == 1


def _read_header(handle, max_record_bytes: int) -> tuple[bytes, int]:
    chunk = read_records(handle, 0, 0, 1, max_record_bytes, continues=_open_quote)
    if not chunk.records:
        return b"", chunk.end_offset
    return chunk.records[0], chunk.end_offset


def read_csv_batch(
    path: str, file_index: int, start: Position, max_rows: int, max_record_bytes: int
) -> RawBatch:
    """Read up to `max_rows` records of a CSV file from `start` (offset 0: before the header)."""
    with open(path, "rb") as handle:
        header, header_end = _read_header(handle, max_record_bytes)
        line = start.line if start.offset else header.count(b"\n") or 1
        offset = max(start.offset, header_end)
        chunk = read_records(handle, offset, line, max_rows, max_record_bytes, continues=_open_quote)
    header_text = header.decode("utf-8", errors="replace")
    expected_fields = len(next(csv.reader([header_text]), []))

    def parse(records: list[bytes]) -> pl.DataFrame:
        body = header if header.endswith(b"\n") else header + b"\n"
        return pl.read_csv(io.BytesIO(body + b"".join(records)), infer_schema_length=None)

    def record_problem(raw: bytes) -> str | None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return f"not valid UTF-8 (byte {exc.start} of the record)"
        fields = len(next(csv.reader([text.rstrip("\r\n")]), []))
        if fields > expected_fields:
            return f"expected {expected_fields} fields, found {fields}"
        return None

    return text_batch(path, file_index, start, chunk, parse, record_problem, max_record_bytes)
