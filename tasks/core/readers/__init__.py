"""Readers of HOLD₁: each returns one bounded batch from a position, never the whole input."""

from __future__ import annotations

import os
from dataclasses import replace

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFile, InputFormat, crc32c_of
from bqhold.tasks.core.readers.csv import read_csv_batch
from bqhold.tasks.core.readers.duckdb_table import read_table_batch
from bqhold.tasks.core.readers.json_array import read_json_array_batch, split_elements, starts_with_array
from bqhold.tasks.core.readers.jsonl import read_jsonl_batch
from bqhold.tasks.core.readers.lines import read_records
from bqhold.tasks.core.readers.parquet import parquet_row_count, read_parquet_batch
from bqhold.tasks.core.records import EXACT_PARSE, BatchRequest, ParseChoice, Position, RawBatch, RecordFormat
from bqhold.tasks.core.spool import ensure_local

# The largest row BigQuery accepts in a JSON load: the limit bounds memory, it must not reject
# data the warehouse would take. A longer record is skipped in chunks and quarantined whole.
DEFAULT_MAX_RECORD_BYTES = 100 * 1024 * 1024
# A batch stops after this much input even short of its row count, so a batch of large records
# costs about as much memory as a batch of small ones (plus at most one record).
MAX_BATCH_BYTES = 64 * 1024 * 1024


def record_format(item: InputFile) -> RecordFormat:
    """How the records of `item` are written: a `.json` file starting with `[` is one array."""
    if item.format.by_rows:
        return RecordFormat.ROWS
    if item.format is InputFormat.CSV:
        return RecordFormat.CSV
    if item.path.lower().endswith(".json") and starts_with_array(item.path):
        return RecordFormat.JSON_ARRAY
    return RecordFormat.JSONL


_TEXT_READERS = {
    RecordFormat.JSONL: read_jsonl_batch,
    RecordFormat.JSON_ARRAY: read_json_array_batch,
    RecordFormat.CSV: read_csv_batch,
}


def read_batch(
    item: InputFile,
    start: Position,
    max_rows: int,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    text_columns: frozenset[str] = frozenset(),
    parse: ParseChoice = EXACT_PARSE,
    null_markers: frozenset[str] = frozenset(),
) -> RawBatch:
    """Read the next batch of `item` from `start` (`text_columns`, column names, are read as text;
    `parse`: how JSONL may be parsed; `null_markers`: CSV text that means null); its end carries
    the digest of what was read."""
    ensure_local(item)
    fmt = record_format(item)
    if item.format is InputFormat.DUCKDB_TABLE:
        raw = read_table_batch(item.path, start, max_rows)
    elif fmt is RecordFormat.ROWS:
        raw = read_parquet_batch(item.path, start, max_rows)
    else:
        request = BatchRequest(
            item.path, start, max_rows, max_record_bytes, text_columns, MAX_BATCH_BYTES, parse, null_markers
        )
        raw = _TEXT_READERS[fmt](request)
    return _with_digest(item, raw)


def _with_digest(item: InputFile, raw: RawBatch) -> RawBatch:
    """`raw` with the crc32c of its file up to its end (text files: read again from the page
    cache, ~3 ms per 18 MB; Parquet: the whole file, once it is used up) and, at the end of the
    file, the file's size and mtime: what tells a later run whether the file changed."""
    if item.format is InputFormat.DUCKDB_TABLE:
        crc = raw.end.crc  # read with the rows
    elif item.format is InputFormat.PARQUET:
        crc = crc32c_of(item.path) if raw.exhausted else 0
    else:
        crc = crc32c_of(item.path, raw.end.offset - raw.start.offset, raw.start.offset, raw.start.crc)
    raw = replace(raw, end=replace(raw.end, crc=crc))
    if not raw.exhausted:
        return raw
    if item.origin is not None or item.format is InputFormat.DUCKDB_TABLE:  # its version as resolved
        return replace(raw, file_size=item.size, file_mtime_ns=item.mtime_ns)
    try:
        seen = os.stat(item.path)
    except OSError as exc:
        raise InputError(f"{item.path}: cannot read input ({exc.strerror})") from exc
    return replace(raw, file_size=seen.st_size, file_mtime_ns=seen.st_mtime_ns)


def validate_readable(item: InputFile) -> None:
    """Fail fast (InputError) on an input that cannot be read at all, before any state exists
    (a spooled one: its origin, when it is a local file; an object was just listed)."""
    if item.origin is not None and "://" in item.origin:
        return
    if item.format is InputFormat.PARQUET:
        parquet_row_count(item.path)
        return
    if item.format is InputFormat.DUCKDB_TABLE:
        return  # its rows were counted when it was resolved
    try:
        with open(item.origin or item.path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{item.name}: cannot read input ({exc.strerror})") from exc


_SAMPLE_BYTES = 256 * 1024


def estimate_bytes_per_row(item: InputFile) -> float:
    """Input bytes per record, from the records at the start of a text file or a Parquet
    file's metadata.

    The memory guard sizes the first batch with it, before any batch has been measured. A
    record larger than the sample counts with its full size (skipped to its end, not held),
    so a file of huge records is not taken for one of small ones.
    """
    if item.format is InputFormat.DUCKDB_TABLE:
        return 0.0  # no bytes to go by: the guard sizes the first batch without it
    try:
        ensure_local(item)
        fmt = record_format(item)
        if fmt is RecordFormat.ROWS:
            import pyarrow.parquet as pq

            metadata = pq.ParquetFile(item.path).metadata
            rows = metadata.num_rows
            raw = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
            return raw / rows if rows else 0.0
        if fmt is RecordFormat.JSON_ARRAY:
            chunk, _ = split_elements(item.path, Position(), _SAMPLE_BYTES, _SAMPLE_BYTES, _SAMPLE_BYTES)
        else:
            with open(item.path, "rb") as handle:
                quoted = fmt is RecordFormat.CSV
                chunk = read_records(handle, 0, 0, _SAMPLE_BYTES, _SAMPLE_BYTES, quoted, _SAMPLE_BYTES)
        return chunk.end_offset / max(1, len(chunk.records) + len(chunk.oversized))
    except (OSError, ValueError, InputError):
        return 0.0
