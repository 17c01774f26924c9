"""Bad, huge, deep and wide records through the real command: each is delivered, quarantined with
its original bytes, or refused in one line, in bounded time and memory; a fixed quarantine file
replays exactly once (issue 9 items 7, 19, 20, 21, 31)."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb

from bqhold.tasks.core.staging import META_COLUMNS
from tests.conftest import ROOT, CliResult, Workspace


def warehouse_rows(workspace: Workspace, table: str, columns: str = "count(*)", where: str = "true") -> tuple:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} WHERE {where}").fetchone()


def quarantined(workspace: Workspace) -> list[dict]:
    """Every quarantine entry of the workspace's runs, in batch order."""
    files = sorted((workspace.hold / "runs").glob("*/quarantine/batch-*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def replay(workspace: Workspace, path: Path, *args: str) -> CliResult:
    """`python flows/run.py replay PATH ...`, its summary read from --summary-json."""
    summary = workspace.root / "replay-summary.json"
    summary.unlink(missing_ok=True)
    command = [sys.executable, str(ROOT / "flows" / "run.py"), "replay", str(path)]
    done = subprocess.run(
        [*command, "--no-progress", "--summary-json", str(summary), *args],
        cwd=workspace.root,
        env=workspace.env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    parsed = json.loads(summary.read_text()) if summary.exists() else None
    return CliResult(done.returncode, done.stdout, done.stderr, parsed)


def last_error_line(result: CliResult) -> str:
    assert "Traceback" not in result.output, result.output
    return result.stderr.strip().splitlines()[-1]


def test_a_json_file_holding_one_array_on_one_line_is_read_as_its_records(workspace: Workspace) -> None:
    elements = [json.dumps({"event_id": f"e{i}", "n": i}) for i in range(5000)]
    elements.insert(100, "42")
    elements.insert(4000, '"not an object"')
    data = workspace.root / "export.json"
    data.write_text("[" + ",".join(elements) + "]")

    result = workspace.cli("--input", str(data), "--batch-size", "2000")

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (5000, 1 + 1)
    assert warehouse_rows(workspace, "export", "count(*), count(DISTINCT event_id)") == (5000, 5000)
    odd = [(index + 1, element) for index, element in enumerate(elements) if not element.startswith("{")]
    assert [(entry["line"], entry["record"]) for entry in quarantined(workspace)] == odd, "element index and bytes"


def test_a_file_whose_every_record_is_bad_is_refused_and_blocks_nothing_once_fixed(workspace: Workspace) -> None:
    data = workspace.root / "orders.jsonl"
    data.write_text("id,name\n1,a\n2,b\n3,c\n4,d\n")  # a CSV named .jsonl: 5 lines, none of them JSON

    refused = workspace.cli("--input", str(data))

    assert refused.code == 2, refused.output
    line = last_error_line(refused)
    assert str(data) in line and "line 1" in line and "malformed JSON" in line

    data.write_text("".join(json.dumps({"id": i, "name": name}) + "\n" for i, name in enumerate("abcd", 1)))
    fixed = workspace.cli("--input", str(data))
    assert fixed.code == 0, fixed.output
    assert warehouse_rows(workspace, "orders") == (4,)


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


def test_quarantine_keeps_each_source_record_and_a_fixed_file_replays_exactly_once(workspace: Workspace) -> None:
    lines = [json.dumps({"event_id": f"e{i}", "n": i, "user": {"id": i}}).encode() for i in range(60)]
    bad = {
        11: b'{"event_id": "e10", "n": , "user": {"id": 10}}',  # malformed
        21: b'{"event_id": "e20", "n": "twenty", "user": {"id": 20}}',  # n is INT64 since batch 0
        45: b'{"event_id": "e44", "n": 44, "note": "caf\xe9"}',  # not UTF-8
    }
    for line, raw in bad.items():
        lines[line - 1] = raw
    data = workspace.root / "events.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")

    first = workspace.cli("--input", str(data), "--batch-size", "20")

    assert first.code == 0, first.output
    entries = quarantined(workspace)
    assert [entry["line"] for entry in entries] == [11, 21, 45], "one per batch of 20, under the error rate"
    kept = [entry.get("record", "").encode() or base64.b64decode(entry["record_base64"]) for entry in entries]
    assert kept == list(bad.values()), "the source line, not a preview or the flattened row"

    fixes = {
        11: {"event_id": "e10", "n": 10},
        21: {"event_id": "e20", "n": 20},
        45: {"event_id": "e44", "n": 44, "note": "café"},
    }
    fixed = workspace.root / "fixed-quarantine.jsonl"  # the user's fixed copy, outside HOLD₂
    with fixed.open("w") as out:
        for entry in entries:
            entry.pop("record_base64", None)
            out.write(json.dumps({**entry, "record": json.dumps(fixes[entry["line"]])}) + "\n")

    replayed = replay(workspace, fixed, "--hold-dir", str(workspace.hold))
    again = replay(workspace, fixed, "--hold-dir", str(workspace.hold))

    assert replayed.code == 0 and replayed.summary["rows_written"] == 3, replayed.output
    assert again.code == 0, again.output
    assert warehouse_rows(workspace, "events", "count(*), count(DISTINCT event_id)") == (60, 60), "loaded once"
    assert warehouse_rows(workspace, "events", "n", "event_id = 'e20'") == (20,)


def wide_records(path: Path, fields: int, rows: int) -> Path:
    path.write_text("".join(json.dumps({f"f{i}": row * i for i in range(fields)}) + "\n" for row in range(rows)))
    return path


def test_more_columns_than_bigquery_allows_are_refused_in_one_line(workspace: Workspace) -> None:
    data = wide_records(workspace.root / "wide.jsonl", fields=10_001, rows=20)

    result = workspace.cli("--input", str(data), timeout=90)

    assert result.code == 2, result.output
    line = last_error_line(result)
    assert str(data) in line and f"{10_001 + len(META_COLUMNS):,} columns" in line and "10,000" in line


def test_wide_records_are_staged_and_loaded_in_linear_time(workspace: Workspace) -> None:
    data = wide_records(workspace.root / "wide.jsonl", fields=2_000, rows=200)

    result = workspace.cli("--input", str(data), timeout=120)

    assert result.code == 0, result.output
    assert warehouse_rows(workspace, "wide", "count(*), sum(f1999)") == (200, sum(row * 1999 for row in range(200)))
    assert result.summary["stage_s"] + result.summary["load_s"] < 8, "2,000 x 200 took 11 s when quadratic (~2 s now)"


def test_sigterm_is_honoured_within_seconds_during_a_wide_batch(workspace: Workspace) -> None:
    data = wide_records(workspace.root / "wide.jsonl", fields=9_000, rows=40)
    summary = workspace.root / "summary.json"
    process = subprocess.Popen(
        workspace.command("--input", str(data), "--batch-size", "10", "--summary-json", str(summary)),
        cwd=workspace.root,
        env=workspace.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not list((workspace.hold / "runs").glob("*/checkpoint.json")):
            assert process.poll() is None, process.communicate()[0]
            assert time.monotonic() < deadline, "the run never started"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        output = process.communicate(timeout=90)[0]
        waited = time.monotonic() - signalled
    finally:
        process.kill()
    assert process.returncode == 143 and "re-run" in output, output
    assert json.loads(summary.read_text())["batches"] < 4, "stopped at a batch boundary, not at the end"
    # The first of these batches took ~40 s while each new column cost an ALTER TABLE; ~2 s now.
    assert waited < 20, f"SIGTERM waited {waited:.0f} s for a long step"
