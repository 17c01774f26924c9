"""Readers of HOLD₁: each returns one bounded batch from a position, never the whole input."""

from __future__ import annotations

from tasks.core.errors import InputError
from tasks.core.inputs import InputFile, InputFormat
from tasks.core.readers.csv import read_csv_batch
from tasks.core.readers.jsonl import read_jsonl_batch
from tasks.core.readers.parquet import parquet_row_count, read_parquet_batch
from tasks.core.records import Position, RawBatch

DEFAULT_MAX_RECORD_BYTES = 8 * 1024 * 1024


def read_batch(
    item: InputFile,
    start: Position,
    max_rows: int,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    text_columns: frozenset[str] = frozenset(),
) -> RawBatch:
    """Read the next batch of `item` from `start`; `text_columns` (column names) are read as text."""
    if item.format is InputFormat.JSONL:
        return read_jsonl_batch(item.path, start.file_index, start, max_rows, max_record_bytes, text_columns)
    if item.format is InputFormat.CSV:
        return read_csv_batch(item.path, start.file_index, start, max_rows, max_record_bytes, text_columns)
    return read_parquet_batch(item.path, start.file_index, start, max_rows)


def validate_readable(item: InputFile) -> None:
    """Fail fast (InputError) on an input that cannot be read at all, before any state exists."""
    if item.format is InputFormat.PARQUET:
        parquet_row_count(item.path)
        return
    try:
        with open(item.path, "rb") as handle:
            handle.read(1)
    except OSError as exc:
        raise InputError(f"{item.path}: cannot read input ({exc.strerror})") from exc


_SAMPLE_BYTES = 256 * 1024


def estimate_bytes_per_row(item: InputFile) -> float:
    """Input bytes per record, from the start of a text file or a Parquet file's metadata.

    The memory guard sizes the first batch with it, before any batch has been measured.
    """
    try:
        if item.format is InputFormat.PARQUET:
            import pyarrow.parquet as pq

            metadata = pq.ParquetFile(item.path).metadata
            rows = metadata.num_rows
            raw = sum(metadata.row_group(i).total_byte_size for i in range(metadata.num_row_groups))
            return raw / rows if rows else 0.0
        with open(item.path, "rb") as handle:
            sample = handle.read(_SAMPLE_BYTES)
        return len(sample) / max(1, sample.count(b"\n"))
    except (OSError, ValueError):
        return 0.0
