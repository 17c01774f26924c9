"""A batch of a DuckDB table (HOLD₁ `duckdb:///path.duckdb?table=NAME`, tasks/core/table_source.py):
rows in rowid order from a rowid, with the digest of what was read."""

from __future__ import annotations

import duckdb
import polars as pl

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.records import LINE_COLUMN, OFFSET_COLUMN, Position, RawBatch, RecordFormat
from bqhold.tasks.core.table_source import DIGEST_MASK, connect, parse_table_spec

_ROWID, _HASH = "__bqhold_rowid", "__bqhold_row_hash"


def read_table_batch(spec: str, start: Position, max_rows: int) -> RawBatch:
    """Up to `max_rows` rows from rowid `start.offset`, in rowid order; the digest of what was read is in `end.crc`."""
    source = parse_table_spec(spec)
    con = connect(source)
    try:
        table = con.sql(
            # Each row's hash in the same scan: the batch's digest needs no second read.
            f"SELECT rowid AS {_ROWID}, hash(t) AS {_HASH}, * FROM {source.quoted} t WHERE rowid >= ? "
            "ORDER BY rowid LIMIT ?",
            params=[start.offset, max_rows + 1],  # one row more tells whether the table goes on
        ).to_arrow_table()
    except duckdb.CatalogException as exc:
        raise InputError(f"{spec}: no table {source.table} in {source.path}") from exc
    except duckdb.Error as exc:
        raise InputError(
            f"{spec}: rows from rowid {start.offset:,} cannot be read ({str(exc).splitlines()[0]})"
        ) from exc
    finally:
        con.close()
    frame = pl.from_arrow(table)
    exhausted = frame.height <= max_rows
    frame = frame.head(max_rows)
    rowids = frame[_ROWID]
    end_offset = int(rowids[-1]) + 1 if frame.height else start.offset
    crc = (start.crc + sum(frame[_HASH].to_list())) & DIGEST_MASK  # as table_digest sums them
    frame = frame.drop(_ROWID, _HASH).with_columns(
        (pl.int_range(frame.height, dtype=pl.Int64) + start.line + 1).alias(LINE_COLUMN),
        rowids.cast(pl.Int64).alias(OFFSET_COLUMN),
    )
    return RawBatch(
        frame=frame,
        start=start,
        end=Position(start.file_index, end_offset, start.line + frame.height, crc),
        records_read=frame.height,
        bytes_read=0,
        exhausted=exhausted,
        format=RecordFormat.ROWS,
    )
