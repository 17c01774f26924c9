"""A DuckDB table as HOLD₁, its pure parts (tasks/core/table_source.py) on a real DuckDB file: the
spec, where the rows end, and the digest that tells whether staged rows are still the same."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFormat, resolve_inputs
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.table_source import parse_table_spec, table_digest, table_end


@pytest.fixture
def source(tmp_path: Path) -> str:
    path = tmp_path / "src.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA raw")
        con.execute("CREATE TABLE raw.events AS SELECT range AS n, 'v' || range AS v FROM range(1000)")
    return f"duckdb://{path}?table=raw.events"


@pytest.mark.parametrize(
    "spec",
    [
        "duckdb:///x.duckdb",
        "duckdb:///x.duckdb?table=a;drop",
        "duckdb:///x.duckdb?table=a&table=b",
        "duckdb://?table=t",
    ],
)
def test_a_spec_names_one_table_of_one_file(spec):
    with pytest.raises(InputError, match=r"duckdb:///path/file.duckdb\?table=NAME"):
        parse_table_spec(spec)


def test_a_relative_file_is_made_absolute(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert (
        parse_table_spec("duckdb://data/src.duckdb?table=events").spec
        == f"duckdb://{tmp_path}/data/src.duckdb?table=events"
    )


def test_the_digest_continues_from_batch_to_batch_and_sees_a_changed_row(source: str):
    assert table_end(source) == 1000
    whole = table_digest(source, 1000)
    assert table_digest(source, 1000, 400, table_digest(source, 400)) == whole

    path = parse_table_spec(source).path
    with duckdb.connect(path) as con:
        con.execute("UPDATE raw.events SET v = 'changed' WHERE n = 10")
    assert table_digest(source, 1000) != whole
    assert table_digest(source, 400, 11, table_digest(source, 11)) != whole


def test_batches_read_in_rowid_order_carry_the_digest_of_what_they_read(source: str):
    [item] = resolve_inputs(source)
    assert item.format is InputFormat.DUCKDB_TABLE and item.size == 1000

    first = read_batch(item, Position(), 600)
    second = read_batch(item, first.end, 600)

    assert first.frame["n"].to_list() == list(range(600)) and not first.exhausted
    assert second.frame["n"].to_list() == list(range(600, 1000)) and second.exhausted
    assert second.end == Position(0, 1000, 1000, table_digest(source, 1000))
