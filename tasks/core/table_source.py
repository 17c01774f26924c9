"""A DuckDB table as HOLD₁: `--input duckdb:///path/source.duckdb?table=events`.

Read in bounded batches in rowid order (stable while the table is not rewritten), from a rowid:
a position's offset is the next rowid to read, its line the rows read so far. Its digest, in
place of a text file's crc32c, is the sum of DuckDB's `hash` of each row before that rowid
(modulo 2^64): it continues from batch to batch as a crc does, and tells whether the rows a run
staged are still the same (a changed, deleted or inserted row below the position changes it).
A table grown at its end since a delivery is read from where the delivery ended. The file is
opened read-only, once per request (another process may be writing it between batches). The
reader is tasks/core/readers/duckdb_table.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import duckdb

from bqhold.tasks.core.errors import InputError

SCHEME = "duckdb://"
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
DIGEST_MASK = (1 << 64) - 1


@dataclass(frozen=True)
class TableSource:
    """A table of a DuckDB file."""

    path: str  # absolute
    table: str  # [schema.]name

    @property
    def spec(self) -> str:
        """As an input spec: the job's identity and the InputFile's path."""
        return f"{SCHEME}{self.path}?table={self.table}"

    @property
    def quoted(self) -> str:
        return ".".join(f'"{part}"' for part in self.table.split("."))


def parse_table_spec(spec: str) -> TableSource:
    """The table `duckdb:///path.duckdb?table=NAME` names, or an InputError saying what is wrong."""
    parts = urlsplit(spec)
    path = (parts.netloc + parts.path) if parts.netloc else parts.path
    tables = parse_qs(parts.query).get("table", [])
    if not path or len(tables) != 1 or not _TABLE.fullmatch(tables[0]):
        raise InputError(
            f"{spec}: a DuckDB input is duckdb:///path/file.duckdb?table=NAME (one table, [schema.]name; "
            "a view or a query is not read: rows are read in rowid order)"
        )
    return TableSource(os.path.abspath(os.path.expanduser(path)), tables[0])


def connect(source: TableSource) -> duckdb.DuckDBPyConnection:
    if not os.path.isfile(source.path):
        raise InputError(f"{source.spec}: no such DuckDB file")
    try:
        return duckdb.connect(source.path, read_only=True)
    except duckdb.Error as exc:
        raise InputError(f"{source.spec}: cannot open the DuckDB file ({str(exc).splitlines()[0]})") from exc


def _query(source: TableSource, sql: str, params: list) -> list[tuple]:
    con = connect(source)
    try:
        return con.execute(sql.format(table=source.quoted), params).fetchall()
    except duckdb.CatalogException as exc:
        raise InputError(f"{source.spec}: no table {source.table} in {source.path}") from exc
    except duckdb.Error as exc:
        raise InputError(f"{source.spec}: cannot be read ({str(exc).splitlines()[0]})") from exc
    finally:
        con.close()


def table_end(spec: str) -> int:
    """One past the table's highest rowid (0 when empty): how far a run reads it."""
    [(end,)] = _query(parse_table_spec(spec), "SELECT coalesce(max(rowid) + 1, 0) FROM {table}", [])
    return int(end)


def table_digest(spec: str, end: int, start: int = 0, digest: int = 0) -> int:
    """The digest of the rows with rowid in [start, end), continuing `digest` (that of those before `start`)."""
    [(total,)] = _query(
        parse_table_spec(spec),
        "SELECT coalesce(sum(hash(t)::HUGEINT), 0) FROM {table} t WHERE rowid >= ? AND rowid < ?",
        [start, end],
    )
    return (digest + int(total)) & DIGEST_MASK
