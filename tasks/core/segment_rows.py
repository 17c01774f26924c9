"""Segment files as DuckDB reads them: one SELECT of the staged columns, typed, from JSONL or
Parquet segments — what HOLD₂'s view of a table shows and what the DuckDB warehouse loads.

Files are named one by one (never a glob: a crash can leave a segment that no ledger entry names,
and it must not be read).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.duckdb_types import duckdb_type, identifier, text_literal

# DuckDB's default longest line; a longer one is refused, and DuckDB holds two buffers of this
# size per file it reads at once, so it grows only as far as the largest segment needs.
_DEFAULT_LINE_BYTES = 16 * 2**20


def longest_line_bytes(files: list[Path]) -> int:
    """A bound on the longest line in `files` (no line is longer than its file) for DuckDB's reader."""
    return max([_DEFAULT_LINE_BYTES, *(path.stat().st_size for path in files)])


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(text_literal(str(path)) for path in files) + "]"


def _typed(column: str, columns: Schema, present: set[str] | None = None) -> str:
    """One column of the view: cast to its staged type, NULL where no file has it."""
    quoted, kind = identifier(column, "column name"), duckdb_type(columns[column])
    if present is not None and column not in present:
        return f"NULL::{kind} AS {quoted}"
    return f"{quoted}::{kind} AS {quoted}"


def _jsonl_rows(files: list[Path], columns: Schema, max_line_bytes: int | None) -> str:
    types = ", ".join(f"{text_literal(name)}: {text_literal(duckdb_type(kind))}" for name, kind in columns.items())
    longest = f", maximum_object_size = {max_line_bytes}" if max_line_bytes else ""
    return (
        f"SELECT {', '.join(_typed(name, columns) for name in columns)} FROM read_json({_file_list(files)}, "
        f"columns = {{{types}}}, format = 'newline_delimited'{longest})"
    )


def _parquet_rows(con: duckdb.DuckDBPyConnection, files: list[Path], columns: Schema) -> str:
    # Older segments lack the columns later batches added: the union of the files' columns, by name.
    source = f"read_parquet({_file_list(files)}, union_by_name = true)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    return f"SELECT {', '.join(_typed(name, columns, present) for name in columns)} FROM {source}"


def rows_sql(
    con: duckdb.DuckDBPyConnection, files: list[Path], columns: Schema, max_line_bytes: int | None = None
) -> str:
    """A SELECT of `columns` (in order, typed) from segment files, JSONL or Parquet by their names;
    `max_line_bytes` bounds a JSONL line when it may exceed DuckDB's default."""
    parts = []
    jsonl = [path for path in files if path.suffix == ".jsonl"]
    parquet = [path for path in files if path.suffix == ".parquet"]
    if jsonl:
        parts.append(_jsonl_rows(jsonl, columns, max_line_bytes))
    if parquet:
        parts.append(_parquet_rows(con, parquet, columns))
    if not parts:
        return f"SELECT {', '.join(_typed(name, columns, set()) for name in columns)} WHERE false"
    return " UNION ALL ".join(parts)
