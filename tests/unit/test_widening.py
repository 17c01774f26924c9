"""Widening a column in real DuckDB files: HOLD₂'s staged table and the DuckDB warehouse."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest

from bqhold.tasks.core.column_types import ColumnType
from bqhold.tasks.core.duckdb_types import widen_column
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.load_plan import LoadGroup
from bqhold.tasks.core.schema import widens
from bqhold.tasks.core.staging import META_COLUMNS
from bqhold.tasks.warehouses.duckdb_warehouse import DuckDbWarehouse


def test_int_to_float_and_anything_to_string_widen_nothing_else_does():
    assert widens(ColumnType.INT64, ColumnType.FLOAT64)
    assert all(widens(kind, ColumnType.STRING) for kind in ColumnType)
    assert not widens(ColumnType.FLOAT64, ColumnType.INT64)
    assert not widens(ColumnType.BOOL, ColumnType.INT64)


def test_widening_keeps_every_value():
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (v BIGINT, b BOOLEAN)")
        con.execute("INSERT INTO t VALUES (1, true), (-(2::BIGINT ** 53)::BIGINT, NULL)")

        widen_column(con, "t", "table t", "v", ColumnType.INT64, ColumnType.FLOAT64)
        widen_column(con, "t", "table t", "b", ColumnType.BOOL, ColumnType.STRING)

        assert con.execute("SELECT v, b FROM t ORDER BY v DESC").fetchall() == [(1.0, "true"), (-(2.0**53), None)]


def test_an_integer_beyond_2_53_refuses_the_float_and_names_string_columns():
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t (v BIGINT)")
        con.execute("INSERT INTO t VALUES (1), (9007199254740993)")

        with pytest.raises(ConfigError, match=r"1 integer\(s\) beyond 2\*\*53.*--string-columns v"):
            widen_column(con, "t", "table t", "v", ColumnType.INT64, ColumnType.FLOAT64)

        assert con.execute("SELECT max(v) FROM t").fetchone() == (9007199254740993,), "nothing changed"


def _load(warehouse: DuckDbWarehouse, tmp_path: Path, batch: int, rows: list[dict], schema: dict) -> int:
    segment = tmp_path / f"batch-{batch}.jsonl"
    segment.write_text("".join(json.dumps({"_run_id": "r", "_batch": batch, **row}) + "\n" for row in rows))
    group = LoadGroup("r", f"r-{batch}", (batch,), (segment.name,), len(rows), "h0")
    return warehouse.load("t", META_COLUMNS | schema, group, [segment])


def test_the_duckdb_warehouse_follows_a_float_but_widens_to_text_only_when_asked(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    warehouse = DuckDbWarehouse(path)
    _load(warehouse, tmp_path, 0, [{"v": 1, "s": 2}], {"v": ColumnType.INT64, "s": ColumnType.INT64})
    _load(warehouse, tmp_path, 1, [{"v": 1.5, "s": 3}], {"v": ColumnType.FLOAT64, "s": ColumnType.INT64})
    with pytest.raises(ConfigError, match="--string-columns s"):
        _load(warehouse, tmp_path, 2, [{"v": 2.5, "s": "x"}], {"v": ColumnType.FLOAT64, "s": ColumnType.STRING})
    warehouse.close()

    asked = DuckDbWarehouse(path, text_columns=frozenset({"s"}))
    _load(asked, tmp_path, 2, [{"v": 2.5, "s": "x"}], {"v": ColumnType.FLOAT64, "s": ColumnType.STRING})
    asked.close()
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT v, s FROM t ORDER BY _batch").fetchall() == [(1.0, "2"), (1.5, "3"), (2.5, "x")]
