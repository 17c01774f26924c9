"""Large and deep records through the real command: delivered up to BigQuery's row limit, or
quarantined with their original bytes without being parsed, in bounded time and memory (issue 9
items 19, 20)."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import Workspace


def warehouse_rows(workspace: Workspace, table: str, columns: str = "count(*)", where: str = "true") -> tuple:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} WHERE {where}").fetchone()


def quarantined(workspace: Workspace) -> list[dict]:
    """Every quarantine entry of the workspace's runs, in batch order."""
    files = sorted((workspace.hold / "runs").glob("*/quarantine/batch-*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def test_records_nested_500_deep_are_quarantined_unparsed_in_about_a_second(workspace: Workspace) -> None:
    deep = '{"event_id": "deep", "x": ' + '{"a": ' * 499 + "1" + "}" * 499 + "}"  # 500 levels
    good = [json.dumps({"event_id": f"e{i}", "user": {"id": i}}) for i in range(400)]
    data = workspace.root / "deep.jsonl"
    data.write_text("\n".join(good[:200] + [deep] * 20 + good[200:]) + "\n")

    result = workspace.cli("--input", str(data), timeout=120)

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (400, 20)
    assert result.summary["stage_s"] < 3 and result.summary["peak_rss_mb"] < 600
    entries = quarantined(workspace)
    assert {entry["line"] for entry in entries} == set(range(201, 221))
    assert all("nested 500 levels deep" in entry["reason"] and entry["record"] == deep for entry in entries)


def test_a_20_mb_record_is_delivered_by_default(workspace: Workspace) -> None:
    blob = "y" * (20 * 2**20)
    data = workspace.root / "big.jsonl"
    records = [{"event_id": f"e{i}", "blob": blob if i == 1 else "x"} for i in range(3)]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = workspace.cli("--input", str(data))

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (3, 0)
    assert warehouse_rows(workspace, "big", "max(length(blob))") == (len(blob),)
