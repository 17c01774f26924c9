"""DuckDB spellings of the staged column types, safe identifiers for SQL text, and widening a
column (HOLD₂'s staged tables and the DuckDB warehouse alike)."""

from __future__ import annotations

import re

import duckdb

from bqhold.tasks.core.bigquery_names import check_table
from bqhold.tasks.core.column_types import ArrayType, ColumnType, FieldType, RecordType, Schema
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.flatten import is_column_name
from bqhold.tasks.core.schema import too_large_to_widen, widens
from bqhold.tasks.core.text_values import MAX_EXACT_FLOAT_INT

_SCALARS: dict[ColumnType, str] = {
    ColumnType.STRING: "VARCHAR",
    ColumnType.INT64: "BIGINT",
    ColumnType.FLOAT64: "DOUBLE",
    ColumnType.BOOL: "BOOLEAN",
    ColumnType.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
    ColumnType.DATE: "DATE",
    ColumnType.JSON: "JSON",
}
_FROM_DUCKDB = {sql: column for column, sql in _SCALARS.items()} | {
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


def duckdb_type(kind: FieldType) -> str:
    """The DuckDB type of a staged type (`STRUCT("a" BIGINT, "b" VARCHAR[])`)."""
    if isinstance(kind, ArrayType):
        return f"{duckdb_type(kind.item)}[]"
    if isinstance(kind, RecordType):
        return (
            "STRUCT("
            + ", ".join(f"{identifier(name, 'column name')} {duckdb_type(inner)}" for name, inner in kind.fields)
            + ")"
        )
    return _SCALARS[kind]


_TYPE_TOKEN = re.compile(r'\s*("(?:[^"]|"")*"|STRUCT\(|\[\]|[(),]|[^\s(),\[\]"]+)')


def column_type_of(text: str) -> FieldType:
    """The staged type of a DuckDB column type as DuckDB writes it (`STRUCT(a BIGINT)[]`); a
    type bqhold does not stage (DECIMAL, TIME, ...) counts as STRING."""
    tokens = [match.group(1) for match in _TYPE_TOKEN.finditer(text)]
    kind, rest = _duckdb_parse(tokens)
    return kind if not rest else ColumnType.STRING


def _duckdb_parse(tokens: list[str]) -> tuple[FieldType, list[str]]:
    if tokens and tokens[0].upper() == "STRUCT(":
        rest, fields = tokens[1:], []
        while rest and rest[0] != ")":
            name = rest[0][1:-1].replace('""', '"') if rest[0].startswith('"') else rest[0]
            inner, rest = _duckdb_parse(rest[1:])
            fields.append((name, inner))
            rest = rest[1:] if rest and rest[0] == "," else rest
        kind: FieldType = RecordType(tuple(fields))
        rest = rest[1:]
    else:
        words = []
        rest = tokens
        while rest and rest[0] not in (",", ")", "[]", "("):
            words.append(rest[0])
            rest = rest[1:]
        if rest and rest[0] == "(":  # DECIMAL(18,3), VARCHAR(10): the parameters are not kept
            rest = rest[rest.index(")") + 1 :]
        kind = _FROM_DUCKDB.get(" ".join(words).upper(), ColumnType.STRING)
    while rest and rest[0] == "[]":
        kind, rest = (ArrayType(kind) if not isinstance(kind, ArrayType) else ColumnType.JSON), rest[1:]
    return kind, rest


def column_definitions(schema: Schema) -> str:
    """`"a" BIGINT, "b" VARCHAR` for a CREATE TABLE."""
    return ", ".join(f"{identifier(name, 'column name')} {duckdb_type(kind)}" for name, kind in schema.items())


def check_widening(
    con: duckdb.DuckDBPyConnection, rows_sql: str, where: str, column: str, old: FieldType, new: FieldType
) -> None:
    """Refuse to widen `column` from `old` to `new` if a value of it in `rows_sql` (a table, or a
    view over files) would change (ConfigError naming --string-columns if one would)."""
    quoted = identifier(column, "column name")
    if not widens(old, new):
        raise ConfigError(f"column {column!r} of {where} is {old.value} and cannot become {new.value}")
    if old is ColumnType.INT64 and new is ColumnType.FLOAT64:
        beyond = con.execute(
            f"SELECT count(*) FROM {rows_sql} WHERE {quoted} > $max OR {quoted} < -$max", {"max": MAX_EXACT_FLOAT_INT}
        ).fetchone()[0]
        if beyond:
            raise ConfigError(too_large_to_widen(where, column, beyond))


def widen_column(
    con: duckdb.DuckDBPyConnection, table_sql: str, where: str, column: str, old: FieldType, new: FieldType
) -> None:
    """ALTER `column` of `table_sql` from `old` to the wider `new`, after checking that no value
    it holds would change (a record's new fields are NULL in the rows it holds)."""
    check_widening(con, table_sql, where, column, old, new)
    con.execute(f"ALTER TABLE {table_sql} ALTER COLUMN {identifier(column, 'column name')} TYPE {duckdb_type(new)}")
