"""HOLD₂ and the DuckDB warehouse facing large records, on real files and real DuckDB: rows over
DuckDB's JSON object size."""

from __future__ import annotations

import json
from pathlib import Path

from tasks.core.load_plan import LoadGroup
from tasks.core.schema import ColumnType
from tasks.warehouses.duckdb_warehouse import DuckDbWarehouse


def test_the_duckdb_warehouse_loads_a_row_over_its_default_json_object_size(tmp_path: Path):
    blob = "z" * (40 * 2**20)
    segment = tmp_path / "batch-000000.jsonl"
    segment.write_text(json.dumps({"_run_id": "r1", "_batch": 0, "n": 1, "blob": blob}) + "\n")
    schema = {
        "_run_id": ColumnType.STRING,
        "_batch": ColumnType.INT64,
        "n": ColumnType.INT64,
        "blob": ColumnType.STRING,
    }
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb")
    try:
        loaded = warehouse.load("big", schema, LoadGroup("r1", "r1-b0", (0,), (segment.name,), 1), [segment])
        assert loaded == 1 and warehouse.counts("big", "r1") == {0: 1}
    finally:
        warehouse.close()
