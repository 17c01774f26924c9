"""The local command's contract: options, exit codes, summary keys, messages (docs/design.md, Exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bench.events import write as write_events
from tests.conftest import ROOT, SUMMARY_KEYS, Workspace, runs_in, warehouse_counts
from tests.segments import segment_files


def warehouse_count(path: Path, table: str = "events", where: str = "true") -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(f'SELECT count(*) FROM "{table}" WHERE {where}').fetchone()[0]


def _file(directory: Path, name: str, data: bytes) -> Path:
    path = directory / name
    path.write_bytes(data)
    return path


def test_no_arguments_runs_the_bundled_sample_into_embedded_duckdb(tmp_path: Path, prefect_api: str) -> None:
    summary = tmp_path / "s.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "flows" / "run.py"), "--summary-json", str(summary)],
        cwd=tmp_path,
        env={**os.environ, "PREFECT_API_URL": prefect_api},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(summary.read_text())
    assert result.keys() >= SUMMARY_KEYS
    assert result["status"] == "delivered" and result["verified"] is True
    # The sample: 3,004 lines = 2,980 distinct events + 20 repeats + 4 broken lines.
    assert (result["rows_read"], result["rows_written"], result["duplicates_skipped"], result["rows_quarantined"]) == (
        3004,
        2980,
        20,
        4,
    )
    assert warehouse_count(tmp_path / "bqhold-data" / "warehouse.duckdb") == 2980
    assert "verified: yes" in done.stdout and "HOLD₂ kept at" in done.stdout


UNUSABLE_INPUTS = [
    (lambda d: d / "missing.jsonl", "input file not found"),
    (lambda d: d, "is a directory"),
    (lambda d: _file(d, "empty.jsonl", b""), "input is empty"),
    (lambda d: _file(d, "bad.parquet", b"PAR1 this is not parquet"), "not a readable Parquet file"),
    (lambda d: _file(d, "notes.txt", b"hello\n"), "unknown input format"),
    (lambda d: d / "nothing-*.jsonl", "no input file matches"),
]


@pytest.mark.parametrize(
    ("make_input", "expected"),
    UNUSABLE_INPUTS,
    ids=["missing", "directory", "empty", "corrupt-parquet", "unknown-format", "empty-glob"],
)
def test_unusable_input_exits_2_with_one_line_and_leaves_no_state(workspace: Workspace, make_input, expected) -> None:
    data = workspace.root / "data"
    data.mkdir()
    path = make_input(data)
    result = workspace.cli("--input", str(path))
    assert result.code == 2
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(path) in lines[0]
    assert runs_in(workspace.hold) == []


def test_refused_inputs_leave_nothing_that_blocks_a_later_run(workspace: Workspace) -> None:
    data = workspace.root / "data"
    data.mkdir()
    for make_input, _ in UNUSABLE_INPUTS:
        assert workspace.cli("--input", str(make_input(data))).code == 2
    good = write_events(data / "good.jsonl", rows=50)
    assert workspace.cli("--input", str(good)).code == 0


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--warehouse", "postgres://x"), "must start with duckdb:// or bigquery://"),
        (("--pipeline", "nope"), "unknown pipeline 'nope'"),
        (("--batch-size", "0"), "--batch-size must be at least 1"),
        (("--table", "sales.orders"), "table name 'sales.orders' is not one BigQuery accepts"),
        (("--run-id", "../escape"), "run id '../escape'"),
        (("--max-record-bytes", "100"), "--max-record-bytes must be at least 1024"),
    ],
)
def test_bad_options_exit_2_without_traceback(workspace: Workspace, args, expected) -> None:
    data = write_events(workspace.root / "in.jsonl", rows=20)
    result = workspace.cli("--input", str(data), *args)
    assert result.code == 2, result.output
    assert expected in result.stderr and "Traceback" not in result.output


def test_rerun_of_a_delivered_input_does_not_load_it_twice(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=300)
    first = workspace.cli("--input", str(data))
    again = workspace.cli("--input", str(data))
    assert (first.code, again.code) == (0, 0)
    assert again.summary["status"] == "already_delivered" and again.summary["run_id"] == first.summary["run_id"]
    assert warehouse_count(workspace.warehouse) == first.summary["rows_written"]


def test_without_key_a_pipeline_dedupes_on_its_own_key(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=300, duplicate_rate=0.1)
    result = workspace.cli("--pipeline", "web_events", "--input", str(data))
    assert result.code == 0, result.output
    assert result.summary["duplicates_skipped"] > 0, "web_events' default key (event_id) was used"
    assert warehouse_counts(workspace.warehouse) == (result.summary["rows_written"],) * 2


def test_with_a_key_records_already_in_hold2_are_skipped_in_another_file(workspace: Workspace) -> None:
    first_file = write_events(workspace.root / "monday.jsonl", rows=300, duplicate_rate=0)
    second_file = workspace.root / "tuesday.jsonl"
    fresh_events = b"".join(json.dumps({"event_id": f"new-{i}", "type": "click"}).encode() + b"\n" for i in range(50))
    second_file.write_bytes(first_file.read_bytes() + fresh_events)
    args = ("--key", "event_id", "--table", "events")
    first = workspace.cli("--input", str(first_file), *args)
    second = workspace.cli("--input", str(second_file), *args)
    assert (first.code, second.code) == (0, 0), second.output
    assert (second.summary["duplicates_skipped"], second.summary["rows_written"]) == (300, 50)
    assert warehouse_counts(workspace.warehouse) == (350, 350)


def test_verification_mismatch_exits_3_and_keeps_hold2(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=500)
    first = workspace.cli("--input", str(data), "--run-id", "nightly-1", "--batch-size", "200")
    assert first.code == 0
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("DELETE FROM events WHERE _batch = 1")
    check = workspace.cli("--input", str(data), "--run-id", "nightly-1")
    assert check.code == 3, check.output
    assert check.summary["verified"] is False and check.summary["status"] == "unverified"
    assert "NOT verified" in check.stderr and "batch 1" in check.stderr
    assert f"python flows/run.py redeliver --run-id nightly-1 --hold-dir {workspace.hold}" in check.stderr
    assert len(segment_files(workspace.hold, "nightly-1")) == 3


def test_csv_parquet_and_glob_inputs(workspace: Workspace) -> None:
    data = workspace.root / "data"
    data.mkdir()
    frame = pl.DataFrame(
        {"id": list(range(1000)), "name": [f"n{i}" for i in range(1000)], "score": [i / 3 for i in range(1000)]}
    )
    frame.write_csv(data / "people.csv")
    frame.write_parquet(data / "people.parquet", row_group_size=128)
    for part in range(3):
        frame.slice(part * 100, 100).write_ndjson(data / f"part-{part}.jsonl")

    for source, table in ((data / "people.csv", "people_csv"), (data / "people.parquet", "people_pq")):
        result = workspace.cli("--input", str(source), "--table", table, "--batch-size", "300", "--key", "id")
        assert result.code == 0, result.output
        assert result.summary["rows_written"] == 1000 and warehouse_count(workspace.warehouse, table) == 1000
    globbed = workspace.cli("--input", str(data / "part-*.jsonl"), "--table", "Parts-2026")  # a name BigQuery takes
    assert globbed.code == 0, globbed.output
    assert warehouse_count(workspace.warehouse, "Parts-2026") == 300 and globbed.summary["table"] == "Parts-2026"
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        types = dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'people_pq'"
            ).fetchall()
        )
    assert (types["id"], types["name"], types["score"]) == ("BIGINT", "VARCHAR", "DOUBLE")


def test_a_50_mb_line_is_quarantined_by_size_and_the_records_around_it_delivered(workspace: Workspace) -> None:
    data = workspace.root / "huge.jsonl"
    huge = b'{"event_id": "huge", "blob": "' + b"x" * (50 * 2**20) + b'"}'
    with open(data, "wb") as handle:
        for i in range(3):
            handle.write(json.dumps({"event_id": f"before-{i}"}).encode() + b"\n")
        handle.write(huge + b"\n")
        for i in range(3):
            handle.write(json.dumps({"event_id": f"after-{i}"}).encode() + b"\n")
    result = workspace.cli("--input", str(data), "--max-record-bytes", str(8 * 2**20))
    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (6, 1)
    assert result.summary["peak_rss_mb"] < 1000, "the line was skipped in chunks, not read whole"
    [quarantine] = (workspace.hold / "runs").glob("*/quarantine/batch-*.jsonl")
    entry = json.loads(quarantine.read_text())
    assert entry["line"] == 4 and "exceeds the limit" in entry["reason"] and quarantine.stat().st_size < 10_000
    kept = quarantine.with_name(entry["record_file"])
    assert entry["record_bytes"] == len(huge) and kept.read_bytes() == huge, "streamed whole into a side file"


def test_max_record_bytes_sets_the_limit(workspace: Workspace) -> None:
    data = workspace.root / "lines.jsonl"
    data.write_text("".join(json.dumps({"event_id": f"e{i}", "text": "x" * 300 * i}) + "\n" for i in range(1, 6)))
    result = workspace.cli("--input", str(data), "--max-record-bytes", "1024", "--max-error-rate", "1")
    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (3, 2), "lines 4 and 5 > 1 KiB"


def test_a_schema_change_mid_file_stops_with_the_file_and_line(workspace: Workspace) -> None:
    data = workspace.root / "drift.jsonl"
    rows = [{"id": i, "amount": i * 1.5} for i in range(200)] + [{"id": f"A-{i}", "amount": "n/a"} for i in range(200)]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    result = workspace.cli("--input", str(data), "--batch-size", "100")
    assert result.code == 2, result.output
    line = result.stderr.strip().splitlines()[-1]
    assert str(data) in line and "line 201" in line and "expected INT64" in line and "--max-error-rate" in line
    assert result.summary["rows_written"] == 200, "the batches before the change are staged and resumable"
