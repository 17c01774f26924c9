"""Parquet: one batch of rows from a row offset; polars reads only the row groups it spans."""

from __future__ import annotations

import polars as pl

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.records import LINE_COLUMN, OFFSET_COLUMN, Position, RawBatch, RecordFormat


def parquet_row_count(path: str) -> int:
    """The number of rows in a Parquet file; InputError if it is not readable Parquet."""
    try:
        return pl.scan_parquet(path).select(pl.len()).collect().item()
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc


def read_parquet_batch(path: str, start: Position, max_rows: int) -> RawBatch:
    """Read up to `max_rows` rows of a Parquet file from row `start.offset`."""
    try:
        frame = (
            pl.scan_parquet(path)
            .slice(start.offset, max_rows + 1)  # one row more tells whether the file goes on
            .with_row_index(LINE_COLUMN, offset=start.offset + 1)
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise InputError(
            f"{path}: Parquet rows from {start.offset:,} cannot be read ({str(exc).splitlines()[0]})"
        ) from exc
    exhausted = frame.height <= max_rows
    frame = frame.head(max_rows).with_columns(
        pl.col(LINE_COLUMN).cast(pl.Int64), (pl.col(LINE_COLUMN).cast(pl.Int64) - 1).alias(OFFSET_COLUMN)
    )
    end = start.offset + frame.height
    return RawBatch(
        frame=frame,
        start=start,
        end=Position(start.file_index, end, end),
        records_read=frame.height,
        bytes_read=0,
        exhausted=exhausted,
        format=RecordFormat.ROWS,
    )
