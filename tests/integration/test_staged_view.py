"""HOLD₂ keeps the staged rows in its segment files only; its database shows them as a view over
the segments the ledger names, which a user opens with plain DuckDB: through the CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import duckdb

from tests.conftest import Workspace, numbered_records

TABLE = ("--table", "things")


def hold_query(hold: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(hold / "hold.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_staged_rows_are_a_view_over_the_segments_the_ledger_names(workspace: Workspace) -> None:
    records = numbered_records(workspace.root / "a.jsonl", "a", 250)
    first = workspace.cli("--input", str(records), "--batch-size", "100", *TABLE)
    assert first.code == 0, first.output
    run_a = first.summary["run_id"]

    tables = "SELECT table_name, table_type FROM information_schema.tables WHERE table_schema = 'staged'"
    assert hold_query(workspace.hold, tables) == [("things", "VIEW")], "no copy of the rows in the database"
    by_batch = "SELECT _batch, count(*), sum(_row_hash) FROM staged.things WHERE _run_id = '{}' GROUP BY 1 ORDER BY 1"
    ledger = "SELECT batch, rows_written, row_hash_sum FROM ledger WHERE run_id = '{}' ORDER BY 1"
    assert hold_query(workspace.hold, by_batch.format(run_a)) == hold_query(workspace.hold, ledger.format(run_a))
    assert [row[1] for row in hold_query(workspace.hold, by_batch.format(run_a))] == [100, 100, 50]

    # A segment no ledger entry names (what a crash before the commit leaves) never shows.
    segments = workspace.hold / "runs" / run_a / "segments"
    shutil.copy(segments / "batch-000000.parquet", segments / "batch-000099.parquet")
    second = workspace.cli("--input", str(numbered_records(workspace.root / "b.jsonl", "b", 30)), *TABLE)
    assert second.code == 0, second.output
    run_b = second.summary["run_id"]
    counts = "SELECT _run_id, count(*) FROM staged.things GROUP BY 1 ORDER BY 1"
    assert hold_query(workspace.hold, counts) == sorted([(run_a, 250), (run_b, 30)])

    cleaned = workspace.subcommand("cleanup", "--run-id", run_a, "--apply")
    assert cleaned.code == 0, cleaned.output
    assert hold_query(workspace.hold, counts) == [(run_b, 30)], "a cleaned run's rows leave the view"


def test_a_column_does_not_widen_to_float_over_a_staged_integer_float_cannot_hold(workspace: Workspace) -> None:
    common = ("--table", "measures", "--key", "id")
    day1 = workspace.root / "day1.jsonl"
    day1.write_text(json.dumps({"id": 1, "v": 2**60}) + "\n")
    assert workspace.cli("--input", str(day1), *common).code == 0

    day2 = workspace.root / "day2.jsonl"
    day2.write_text(json.dumps({"id": 2, "v": 1.5}) + "\n")
    refused = workspace.cli("--input", str(day2), *common)

    assert refused.code == 2, refused.output
    assert "--string-columns v" in refused.output and "Traceback" not in refused.output
    assert hold_query(workspace.hold, "SELECT column_name, type FROM staged_columns WHERE table_name = 'measures'") == [
        ("id", "INT64"),
        ("v", "INT64"),
    ], "the column keeps its type"
