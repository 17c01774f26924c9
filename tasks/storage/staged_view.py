"""A table's staged rows as DuckDB shows them: a view over the segment files the ledger names.

HOLD₂'s database keeps no rows: they are in the sealed segment files, and a view reads them
there, typed as the staged columns say. The view names each file (never a glob: a crash can
leave a segment that no ledger entry names, and it must not show).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from bqhold.tasks.core.duckdb_types import DUCKDB_TYPES, identifier
from bqhold.tasks.core.schema import Schema

# DuckDB's default longest line; a longer one is refused, and DuckDB holds two buffers of this
# size per file it reads at once, so it grows only as far as the largest segment needs.
_DEFAULT_LINE_BYTES = 16 * 2**20


def longest_line_bytes(files: list[Path]) -> int:
    """A bound on the longest line in `files` (no line is longer than its file) for DuckDB's reader."""
    return max([_DEFAULT_LINE_BYTES, *(path.stat().st_size for path in files)])


def _quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _file_list(files: list[Path]) -> str:
    return "[" + ", ".join(_quoted(str(path)) for path in files) + "]"


def _typed(column: str, columns: Schema, present: set[str] | None = None) -> str:
    """One column of the view: cast to its staged type, NULL where no file has it."""
    quoted, kind = identifier(column, "column name"), DUCKDB_TYPES[columns[column]]
    if present is not None and column not in present:
        return f"NULL::{kind} AS {quoted}"
    return f"{quoted}::{kind} AS {quoted}"


def _jsonl_rows(files: list[Path], columns: Schema) -> str:
    types = ", ".join(f"{_quoted(name)}: {_quoted(DUCKDB_TYPES[kind])}" for name, kind in columns.items())
    return (
        f"SELECT {', '.join(_typed(name, columns) for name in columns)} FROM read_json({_file_list(files)}, "
        f"columns = {{{types}}}, format = 'newline_delimited', maximum_object_size = {longest_line_bytes(files)})"
    )


def _parquet_rows(con: duckdb.DuckDBPyConnection, files: list[Path], columns: Schema) -> str:
    # Older segments lack the columns later batches added: the union of the files' columns, by name.
    source = f"read_parquet({_file_list(files)}, union_by_name = true)"
    present = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM {source}").fetchall()}
    return f"SELECT {', '.join(_typed(name, columns, present) for name in columns)} FROM {source}"


def rows_sql(con: duckdb.DuckDBPyConnection, files: list[Path], columns: Schema) -> str:
    """A SELECT of `columns` (in order, typed) from segment files, JSONL or Parquet by their names."""
    parts = []
    jsonl = [path for path in files if path.suffix == ".jsonl"]
    parquet = [path for path in files if path.suffix == ".parquet"]
    if jsonl:
        parts.append(_jsonl_rows(jsonl, columns))
    if parquet:
        parts.append(_parquet_rows(con, parquet, columns))
    if not parts:
        return f"SELECT {', '.join(_typed(name, columns, set()) for name in columns)} WHERE false"
    return " UNION ALL ".join(parts)
