"""DuckDB identifiers and types: only names that cannot end their quotes reach SQL text."""

from __future__ import annotations

import duckdb
import pytest

from bqhold.tasks.core.column_types import FLOAT64_ARRAY, ColumnType, parse_type
from bqhold.tasks.core.duckdb_types import column_definitions, column_type_of, duckdb_type, identifier
from bqhold.tasks.core.errors import ConfigError


@pytest.mark.parametrize("name", ["events", "Orders", "orders-2026", "ventes 2026", "注文", "x" * 1024])
def test_table_names_bigquery_accepts_are_quoted(name):
    assert identifier(name) == f'"{name}"'


@pytest.mark.parametrize(
    "name",
    ["", 'a"b', "a'b", 'x"; DROP TABLE t; --', "events; drop table events", "a.b", "a`b", "x" * 1025],
)
def test_a_table_name_that_could_end_its_quotes_is_refused(name):
    with pytest.raises(ConfigError) as info:
        identifier(name)

    assert repr(name) in str(info.value)


def test_name_with_a_trailing_newline_is_refused():
    with pytest.raises(ConfigError):
        identifier("events\n")


def test_refusal_names_what_the_identifier_is_for():
    with pytest.raises(ConfigError, match="^column name 'Bad'"):
        identifier("Bad", "column name")


def test_column_definitions_for_create_table():
    schema = {"id": ColumnType.INT64, "name": ColumnType.STRING, "at": ColumnType.TIMESTAMP}

    assert column_definitions(schema) == '"id" BIGINT, "name" VARCHAR, "at" TIMESTAMP WITH TIME ZONE'


def test_column_definitions_refuse_an_unsafe_column_name():
    with pytest.raises(ConfigError, match="column name"):
        column_definitions({'a"; drop': ColumnType.STRING})


@pytest.mark.parametrize(
    ("sql", "kind"),
    [
        ("BIGINT", ColumnType.INT64),
        ("INTEGER", ColumnType.INT64),
        ("double", ColumnType.FLOAT64),
        ("BOOLEAN", ColumnType.BOOL),
        ("TIMESTAMP", ColumnType.TIMESTAMP),
        ("TIMESTAMP WITH TIME ZONE", ColumnType.TIMESTAMP),
        ("DATE", ColumnType.DATE),
        ("VARCHAR", ColumnType.STRING),
    ],
)
def test_duckdb_types_map_back_to_staged_types(sql, kind):
    assert column_type_of(sql) is kind


NESTED = [
    FLOAT64_ARRAY,
    parse_type("STRUCT<id INT64, address STRUCT<city STRING, at TIMESTAMP>>"),
    parse_type("ARRAY<STRUCT<sku STRING, qty INT64, tags ARRAY<STRING>>>"),
]


@pytest.mark.parametrize("kind", [*ColumnType, *NESTED], ids=lambda kind: kind.value)
def test_every_staged_type_round_trips_through_duckdb_and_its_own_text(kind):
    assert column_type_of(duckdb_type(kind)) == kind
    assert parse_type(kind.value) == kind


@pytest.mark.parametrize("kind", NESTED, ids=lambda kind: kind.value)
def test_duckdb_reads_back_the_type_of_a_column_it_created(kind):
    with duckdb.connect() as con:
        con.execute(f"CREATE TABLE t (c {duckdb_type(kind)})")
        [(written,)] = con.execute("SELECT data_type FROM information_schema.columns WHERE table_name = 't'").fetchall()

    assert column_type_of(written) == kind


@pytest.mark.parametrize("name", ["café", "名前", "u1f600", "f__run_id", "_1st"])
def test_column_names_may_have_letters_of_any_script(name):
    assert identifier(name, "column name") == f'"{name}"'


@pytest.mark.parametrize("name", ["Café", 'a"b', "a b", "1a", "😀"])
def test_column_names_refuse_what_column_name_never_makes(name):
    with pytest.raises(ConfigError, match="^column name"):
        identifier(name, "column name")
