"""The pipelines' flows under a real Prefect engine, on real files and real DuckDB."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bench.events import write as write_events
from bqhold.flows.generic import generic_flow
from bqhold.flows.web_events import web_events_flow
from bqhold.tasks.core.faults import FAIL_ENV
from tests.conftest import SAMPLE, expected_records
from tests.segments import segment_files


def params(tmp_path: Path, **extra) -> dict:
    return {
        "hold_dir": str(tmp_path / "hold"),
        "warehouse": f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        **extra,
    }


def query(path: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_generic_flow_stages_nested_events_as_records_arrays_and_timestamps(prefect_api: str, tmp_path: Path) -> None:
    summary = generic_flow(input=str(SAMPLE), key="event_id", **params(tmp_path))
    assert summary["status"] == "delivered" and summary["rows_loaded"] == 2980
    columns = dict(
        query(
            tmp_path / "warehouse.duckdb",
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'",
        )
    )
    assert columns["user"] == "STRUCT(id BIGINT, country VARCHAR, plan VARCHAR)"
    assert columns["context"] == 'STRUCT(page STRUCT(path VARCHAR, referrer VARCHAR), utm STRUCT("source" VARCHAR))'
    assert columns["tags"] == "VARCHAR[]" and columns["ts"] == "TIMESTAMP WITH TIME ZONE"
    tags = query(tmp_path / "warehouse.duckdb", "SELECT tags FROM events WHERE event_id = 'evt_000000000'")[0][0]
    assert tags == ["mobile", "beta"]


def test_generic_flow_with_nesting_flatten_makes_a_column_per_field(prefect_api: str, tmp_path: Path) -> None:
    summary = generic_flow(input=str(SAMPLE), key="event_id", nesting="flatten", **params(tmp_path))
    assert summary["status"] == "delivered" and summary["rows_loaded"] == 2980
    columns = dict(
        query(
            tmp_path / "warehouse.duckdb",
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'events'",
        )
    )
    assert (columns["user__id"], columns["context__page__path"]) == ("BIGINT", "VARCHAR")


def test_web_events_pipeline_types_and_quarantines_bad_timestamps(prefect_api: str, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=400)
    with open(data, "ab") as handle:
        handle.write(b'{"event_id": "evt_late", "type": "click", "ts": "yesterday"}\n')
    summary = web_events_flow(input=str(data), table="web_events", **params(tmp_path))
    assert summary["status"] == "delivered"
    quarantine = [
        json.loads(line)
        for f in (tmp_path / "hold" / "runs").glob("*/quarantine/*.jsonl")
        for line in f.read_text().splitlines()
    ]
    assert [q["reason"] for q in quarantine] == ["ts is not a timestamp: yesterday"]
    assert quarantine[0]["line"] == 401
    assert quarantine[0]["record"] == '{"event_id": "evt_late", "type": "click", "ts": "yesterday"}', "the source line"
    warehouse = tmp_path / "warehouse.duckdb"
    types = dict(
        query(
            warehouse, "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'web_events'"
        )
    )
    assert types["event_ts"] == "TIMESTAMP WITH TIME ZONE" and types["is_mobile"] == "BOOLEAN"
    assert query(warehouse, "SELECT count(*) FROM web_events")[0][0] == summary["rows_written"]


def test_a_parquet_row_the_transform_rejects_is_kept_as_read(prefect_api: str, tmp_path: Path) -> None:
    rows = [{"event_id": "e1", "ts": "2026-01-01T00:00:00Z", "user": {"id": 1}}] * 30
    rows.append({"event_id": "e2", "ts": "soon", "user": {"id": 2}})
    data = tmp_path / "events.parquet"
    pl.DataFrame(rows).write_parquet(data)
    summary = web_events_flow(input=str(data), table="web_events", **params(tmp_path))
    assert summary["status"] == "delivered" and summary["rows_quarantined"] == 1
    [path] = (tmp_path / "hold" / "runs").glob("*/quarantine/*.jsonl")
    entry = json.loads(path.read_text())
    assert (entry["format"], entry["line"]) == ("parquet", 31)
    assert json.loads(entry["record"]) == {"event_id": "e2", "ts": "soon", "user": {"id": 2}}, "the row as read"


def test_injected_failure_then_rerun_resumes_without_redoing_batches(
    prefect_api: str, tmp_path: Path, monkeypatch
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=1000, duplicate_rate=0)
    run = params(tmp_path, input=str(data), batch_size=250, run_id="retry-me")
    monkeypatch.setenv(FAIL_ENV, "batch_transformed@2")
    failed = generic_flow(**run, return_state=True)
    assert failed.is_failed()
    committed_before = [p.name for p in segment_files(tmp_path / "hold", "retry-me")]
    mtimes = {p.name: p.stat().st_mtime_ns for p in segment_files(tmp_path / "hold", "retry-me")}
    monkeypatch.delenv(FAIL_ENV)

    summary = generic_flow(**run)
    assert committed_before == ["batch-000000.parquet", "batch-000001.parquet"]
    assert summary["resumed_from_batch"] == 2 and summary["rows_loaded"] == 1000
    for name, mtime in mtimes.items():  # batches 0 and 1 were not rewritten
        assert (tmp_path / "hold" / "runs" / "retry-me" / "segments" / name).stat().st_mtime_ns == mtime


def test_a_later_batch_widens_an_int_column_and_quarantines_a_value_of_another_kind(
    prefect_api: str, tmp_path: Path
) -> None:
    data = tmp_path / "typed.jsonl"
    rows = [{"id": i, "amount": i * 1.5} for i in range(100)]
    rows[70]["amount"] = "a lot"
    rows[90]["id"] = 12.5
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = generic_flow(input=str(data), batch_size=50, **params(tmp_path))
    assert (summary["rows_written"], summary["rows_quarantined"]) == (99, 1)
    reasons = sorted(
        json.loads(line)["reason"]
        for f in (tmp_path / "hold" / "runs").glob("*/quarantine/*.jsonl")
        for line in f.read_text().splitlines()
    )
    assert reasons == ["field 'amount': expected FLOAT64, got a string (--string-columns amount would keep it as text)"]
    warehouse = tmp_path / "warehouse.duckdb"
    assert query(warehouse, "SELECT count(*), sum(id) FROM typed") == [(99, sum(range(100)) - 70 - 90 + 12.5)]


@pytest.mark.parametrize("batch_size", [7, 13, 1000])
def test_batch_size_does_not_change_what_is_delivered(prefect_api: str, tmp_path: Path, batch_size: int) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=100, bad_lines=True)
    summary = generic_flow(input=str(data), key="event_id", batch_size=batch_size, **params(tmp_path))
    frame = pl.read_database(
        "SELECT event_id FROM events ORDER BY event_id",
        duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True),
    )
    assert summary["verified"] and frame.height == summary["rows_written"] == frame["event_id"].n_unique()
    ids, bad = expected_records(data)
    assert set(frame["event_id"]) == ids and summary["rows_quarantined"] == bad, "the same as read independently"
