"""DuckDB spellings of the staged column types, safe identifiers for SQL text, and widening a
column (HOLD₂'s staged tables and the DuckDB warehouse alike)."""

from __future__ import annotations

import duckdb

from bqhold.tasks.core.bigquery_names import check_table
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.flatten import is_column_name
from bqhold.tasks.core.schema import MAX_EXACT_FLOAT_INT, ColumnType, Schema, too_large_to_widen, widens

DUCKDB_TYPES: dict[ColumnType, str] = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INT64: "BIGINT",
    ColumnType.FLOAT64: "DOUBLE",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
    ColumnType.DATE: "DATE",
    ColumnType.FLOAT64_ARRAY: "DOUBLE[]",
}
_FROM_DUCKDB = {sql: column for column, sql in DUCKDB_TYPES.items()} | {
    "INTEGER": ColumnType.INT64,
    "TIMESTAMP": ColumnType.TIMESTAMP,
}


def identifier(name: str, what: str = "table name") -> str:
    """`name` double-quoted for SQL, after checking it: a table name is one BigQuery accepts
    (`bigquery_names.check_table`: no quote can be in it); a column name is one
    `flatten.column_name` makes (lower case, letters of any script)."""
    if what != "column name":
        return f'"{check_table(name)}"'
    if not is_column_name(name):
        raise ConfigError(
            f"{what} {name!r} must be lower-case letters, digits and underscores, not starting with a digit"
        )
    return f'"{name}"'


def text_literal(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def column_type_of(duckdb_type: str) -> ColumnType:
    """The staged type of a DuckDB column type."""
    return _FROM_DUCKDB.get(duckdb_type.upper(), ColumnType.STRING)


def column_definitions(schema: Schema) -> str:
    """`"a" BIGINT, "b" VARCHAR` for a CREATE TABLE."""
    return ", ".join(f"{identifier(name, 'column name')} {DUCKDB_TYPES[kind]}" for name, kind in schema.items())


def check_widening(
    con: duckdb.DuckDBPyConnection, rows_sql: str, where: str, column: str, old: ColumnType, new: ColumnType
) -> None:
    """Refuse to widen `column` from `old` to `new` if a value of it in `rows_sql` (a table, or a
    view over files) would change (ConfigError naming --string-columns if one would)."""
    quoted = identifier(column, "column name")
    if not widens(old, new):
        raise ConfigError(f"column {column!r} of {where} is {old.value} and cannot become {new.value}")
    if new is ColumnType.FLOAT64:
        beyond = con.execute(
            f"SELECT count(*) FROM {rows_sql} WHERE {quoted} > $max OR {quoted} < -$max", {"max": MAX_EXACT_FLOAT_INT}
        ).fetchone()[0]
        if beyond:
            raise ConfigError(too_large_to_widen(where, column, beyond))


def widen_column(
    con: duckdb.DuckDBPyConnection, table_sql: str, where: str, column: str, old: ColumnType, new: ColumnType
) -> None:
    """ALTER `column` of `table_sql` from `old` to the wider `new`, after checking that no value
    it holds would change."""
    check_widening(con, table_sql, where, column, old, new)
    con.execute(f"ALTER TABLE {table_sql} ALTER COLUMN {identifier(column, 'column name')} TYPE {DUCKDB_TYPES[new]}")
