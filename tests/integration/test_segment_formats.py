"""Parquet (the default) and JSONL segments deliver the same rows, to BigQuery (the emulator,
through the real client) and to the DuckDB warehouse; a run resumed in the other format loads
each group in its own format."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import duckdb
import pytest
from google.cloud import bigquery

from bqhold.flows.generic import generic_flow
from bqhold.tasks.core.faults import KILL_ENV
from tests.bigquery_checks import table_id
from tests.conftest import Workspace
from tests.segments import segment_files

COMPARED = "id, colour, n, _batch, _row_hash"  # what a record brings, not when or in which run it was staged


def late_fields(path: Path) -> Path:
    """Records whose later batches bring a field the earlier ones lack, and a value widened to float."""
    records = [{"id": f"r{i}", "n": i} for i in range(150)] + [
        {"id": f"r{i}", "n": i + 0.5, "colour": "red"} for i in range(150, 300)
    ]
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    return path


def bigquery_rows(client: bigquery.Client, dataset: bigquery.Dataset, table: str) -> list[tuple]:
    sql = f"SELECT {COMPARED} FROM `{table_id(dataset, table)}` ORDER BY id"
    return [tuple(row.values()) for row in client.query(sql).result()]


def duckdb_rows(warehouse: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT {COMPARED} FROM {table} ORDER BY id").fetchall()


def test_both_formats_deliver_the_same_rows_to_bigquery(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    data = late_fields(tmp_path / "things.jsonl")
    delivered = {}
    for fmt in ("parquet", "jsonl"):
        table = f"things_{fmt}"
        summary = generic_flow(
            input=str(data),
            warehouse=target,
            hold_dir=str(tmp_path / fmt),
            table=table,
            batch_size=100,
            segment_format=fmt,
        )
        assert summary["verified"] is True, summary
        assert {path.suffix for path in segment_files(tmp_path / fmt)} == {f".{fmt}"}
        delivered[fmt] = bigquery_rows(bigquery_client, bigquery_dataset, table)

    assert len(delivered["parquet"]) == 300
    assert delivered["parquet"] == delivered["jsonl"]
    assert delivered["parquet"][0][:3] == ("r0", None, 0.0) and delivered["parquet"][-1][:3] == ("r99", None, 99.0)


@pytest.mark.parametrize("first, then", [("jsonl", "parquet"), ("parquet", "jsonl")])
def test_a_run_resumed_in_the_other_format_delivers_every_row_once(workspace: Workspace, first: str, then: str) -> None:
    data = late_fields(workspace.root / "things.jsonl")
    args = ("--input", str(data), "--table", "things", "--batch-size", "100", "--key", "id")
    killed = workspace.cli(*args, "--segment-format", first, env={KILL_ENV: "checkpoint_written@0"})
    assert killed.code == -signal.SIGKILL, killed.output

    resumed = workspace.cli(*args, "--segment-format", then)

    assert resumed.code == 0 and resumed.summary["verified"] is True, resumed.output
    assert [path.suffix for path in segment_files(workspace.hold)] == [f".{first}", f".{then}", f".{then}"]
    assert [row[0] for row in duckdb_rows(workspace.warehouse, "things")] == sorted(f"r{i}" for i in range(300))
