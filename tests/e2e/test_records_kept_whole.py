"""Large records through the real command: delivered up to BigQuery's row limit, in bounded
memory (issue 9 item 20)."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import Workspace


def warehouse_rows(workspace: Workspace, table: str, columns: str = "count(*)", where: str = "true") -> tuple:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} WHERE {where}").fetchone()


def test_a_20_mb_record_is_delivered_by_default(workspace: Workspace) -> None:
    blob = "y" * (20 * 2**20)
    data = workspace.root / "big.jsonl"
    records = [{"event_id": f"e{i}", "blob": blob if i == 1 else "x"} for i in range(3)]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = workspace.cli("--input", str(data))

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (3, 0)
    assert warehouse_rows(workspace, "big", "max(length(blob))") == (len(blob),)
