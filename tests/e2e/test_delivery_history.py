"""Issue 9's delivery holes, through the real command: what each re-run delivers after the input,
the warehouse or HOLD₂ changed — every record exactly once, or a one-line refusal with the way out."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import duckdb

from bench.events import write as write_events
from bqhold.tasks.core.faults import KILL_ENV
from tests.conftest import Workspace, distinct_event_ids, warehouse_counts
from tests.segments import segment_files

BATCH = ("--batch-size", "200")
TABLE = ("--table", "events")  # whatever the input file is called


def write_lines(path: Path, start: int, count: int) -> Path:
    """Events numbered start.. start+count-1 (distinct ids, no bad lines), one per line."""
    path.write_bytes(
        b"".join(json.dumps({"event_id": f"e{i:06d}", "n": i}).encode() + b"\n" for i in range(start, start + count))
    )
    return path


def append_lines(path: Path, start: int, count: int) -> None:
    with open(path, "ab") as handle:
        handle.write(
            b"".join(
                json.dumps({"event_id": f"e{i:06d}", "n": i}).encode() + b"\n" for i in range(start, start + count)
            )
        )


def kill_after_batch(workspace: Workspace, *args: str, batch: int = 1) -> None:
    killed = workspace.cli(*args, env={KILL_ENV: f"checkpoint_written@{batch}"})
    assert killed.code == -signal.SIGKILL, killed.output


def test_a_log_file_that_grew_under_an_interrupted_run_is_resumed_and_its_new_lines_delivered(
    workspace: Workspace,
) -> None:
    log = write_lines(workspace.root / "app.jsonl", 0, 600)
    args = ("--input", str(log), "--key", "event_id", *BATCH, *TABLE)
    kill_after_batch(workspace, *args)  # 400 of 600 staged
    append_lines(log, 600, 200)

    resumed = workspace.cli(*args)
    assert resumed.code == 0, resumed.output
    assert resumed.summary["resumed_from_batch"] == 2
    assert warehouse_counts(workspace.warehouse) == (800, 800)

    append_lines(log, 800, 100)
    tail = workspace.cli(*args)
    assert tail.code == 0, tail.output
    assert tail.summary["rows_read"] == 100, "only the appended lines are read"
    assert warehouse_counts(workspace.warehouse) == (900, 900)


def test_fresh_after_an_edit_under_an_interrupted_run_delivers_every_record_once(workspace: Workspace) -> None:
    data = write_lines(workspace.root / "export.jsonl", 0, 600)
    args = ("--input", str(data), "--key", "event_id", *BATCH, *TABLE)
    kill_after_batch(workspace, *args)  # 400 staged: their keys must not suppress the new run's records
    write_lines(data, 1000, 200)
    append_lines(data, 0, 600)  # the same 600 records, behind 200 new ones: the staged part changed

    refused = workspace.cli(*args)
    assert refused.code == 2, refused.output
    assert "already staged, differ now" in refused.stderr and "--fresh" in refused.stderr
    assert "rows read" not in refused.stdout, "no run was planned: no block of zeros beside the staged run's line"

    fresh = workspace.cli(*args, "--fresh")
    assert fresh.code == 0, fresh.output
    assert warehouse_counts(workspace.warehouse) == (800, 800)
    again = workspace.cli(*args)
    assert again.code == 0 and again.summary["status"] == "already_delivered", "the given-up run blocks nothing"


def test_daily_files_in_a_folder_are_delivered_once_each(workspace: Workspace) -> None:
    inbox = workspace.root / "inbox"
    inbox.mkdir()
    write_lines(inbox / "day1.jsonl", 0, 1000)
    write_lines(inbox / "day2.jsonl", 1000, 1000)
    args = ("--input", str(inbox / "*.jsonl"), "--table", "events")
    assert workspace.cli(*args).code == 0
    write_lines(inbox / "day3.jsonl", 2000, 1000)

    third = workspace.cli(*args)
    assert third.code == 0, third.output
    assert third.summary["rows_read"] == 1000
    assert sorted(Path(p).name for p in third.summary["files_skipped"]) == ["day1.jsonl", "day2.jsonl"]
    assert warehouse_counts(workspace.warehouse) == (3000, 3000)

    unchanged = workspace.cli(*args)
    assert unchanged.code == 0 and unchanged.summary["status"] == "already_delivered", unchanged.output
    assert warehouse_counts(workspace.warehouse) == (3000, 3000)


def test_a_file_that_arrives_while_a_run_is_unfinished_waits_for_the_next_run(workspace: Workspace) -> None:
    inbox = workspace.root / "inbox"
    inbox.mkdir()
    write_lines(inbox / "day1.jsonl", 0, 300)
    args = ("--input", str(inbox / "*.jsonl"), *BATCH, *TABLE)
    kill_after_batch(workspace, *args, batch=0)
    write_lines(inbox / "day2.jsonl", 300, 100)

    resumed = workspace.cli(*args)
    assert resumed.code == 0, resumed.output
    assert "1 file(s) matched by --input now are not part of run" in resumed.stderr
    assert warehouse_counts(workspace.warehouse) == (300, 300)
    nextrun = workspace.cli(*args)
    assert nextrun.code == 0 and nextrun.summary["rows_read"] == 100, nextrun.output
    assert warehouse_counts(workspace.warehouse) == (400, 400)


def test_a_same_size_edit_in_the_middle_of_a_delivered_file_is_seen_and_refused(workspace: Workspace) -> None:
    inbox = workspace.root / "inbox"
    inbox.mkdir()
    day1 = write_events(inbox / "day1.jsonl", rows=2000, duplicate_rate=0)  # ~700 KB: the middle is far from both ends
    args = ("--input", str(inbox / "*.jsonl"), *TABLE)
    first = workspace.cli(*args)
    assert first.code == 0
    original = day1.read_bytes()
    middle = len(original) // 2
    day1.write_bytes(
        original[:middle] + (b"X" if original[middle : middle + 1] != b"X" else b"Y") + original[middle + 1 :]
    )

    refused = workspace.cli(*args)
    assert refused.code == 2, refused.output
    message = refused.stderr.strip().splitlines()[-1]
    assert "day1.jsonl" in message and first.summary["run_id"] in message and "abandon --run-id" in message
    assert "Traceback" not in refused.output

    day1.write_bytes(original)  # restored: same bytes, a new mtime
    assert workspace.cli(*args).summary["status"] == "already_delivered"
    assert warehouse_counts(workspace.warehouse)[0] == first.summary["rows_written"]


def test_a_lost_warehouse_is_not_verified_by_a_rerun_and_redeliver_restores_it(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=300)
    args = ("--input", str(data), "--key", "event_id")
    first = workspace.cli(*args)
    assert first.code == 0
    workspace.warehouse.unlink()

    for extra in ((), ("--fresh",)):
        check = workspace.cli(*args, *extra)
        assert check.code == 3, check.output
        assert check.summary["verified"] is False
        assert f"redeliver --run-id {first.summary['run_id']}" in check.stderr

    redelivered = workspace.subcommand("redeliver", "--run-id", first.summary["run_id"])
    assert redelivered.code == 0, redelivered.output
    expected = distinct_event_ids(data)
    assert warehouse_counts(workspace.warehouse) == (expected, expected)


def test_records_skipped_as_duplicates_of_a_lost_run_are_not_called_verified(workspace: Workspace) -> None:
    day1 = write_events(workspace.root / "day1.jsonl", rows=300, duplicate_rate=0)
    day2 = workspace.root / "day2.jsonl"
    day2.write_bytes(day1.read_bytes())  # a producer that sent yesterday's events again
    first = workspace.cli("--input", str(day1), "--key", "event_id", "--table", "events")
    assert first.code == 0
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("DELETE FROM events")

    second = workspace.cli("--input", str(day2), "--key", "event_id", "--table", "events")
    assert second.code == 3, second.output
    assert second.summary["duplicates_skipped"] == 300
    assert first.summary["run_id"] in second.stderr and "redeliver --run-id" in second.stderr


def test_after_cleanup_a_lost_table_is_named_truthfully_and_abandon_restages_it_from_hold1(
    workspace: Workspace,
) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=400)
    args = ("--input", str(data), "--key", "event_id")
    first = workspace.cli(*args)
    assert first.code == 0
    assert workspace.subcommand("cleanup", "--apply").code == 0
    with duckdb.connect(str(workspace.warehouse)) as con:
        con.execute("DROP TABLE events")

    lost = workspace.cli(*args)
    assert lost.code == 3, lost.output
    line = lost.stderr.strip().splitlines()[-1]
    assert "cleaned up" in line and f"abandon --run-id {first.summary['run_id']}" in line
    assert "HOLD₂ is kept" not in line
    redeliver = workspace.subcommand("redeliver", "--run-id", first.summary["run_id"])
    assert redeliver.code == 2 and f"abandon --run-id {first.summary['run_id']}" in redeliver.stderr

    abandoned = workspace.subcommand("abandon", "--run-id", first.summary["run_id"])
    assert abandoned.code == 0, abandoned.output
    again = workspace.cli(*args)
    assert again.code == 0, again.output
    assert again.summary["run_id"] != first.summary["run_id"]
    expected = distinct_event_ids(data)
    assert warehouse_counts(workspace.warehouse) == (expected, expected)


def test_abandon_takes_a_delivered_runs_rows_out_so_a_changed_file_can_replace_them(workspace: Workspace) -> None:
    data = write_lines(workspace.root / "orders.jsonl", 0, 300)
    first = workspace.cli("--input", str(data), *TABLE)
    assert first.code == 0
    write_lines(data, 0, 250)  # a corrected export: 50 orders dropped
    assert workspace.cli("--input", str(data), *TABLE).code == 2

    assert workspace.subcommand("abandon", "--run-id", first.summary["run_id"]).code == 0
    assert warehouse_counts(workspace.warehouse) == (0, 0)
    replaced = workspace.cli("--input", str(data), *TABLE)
    assert replaced.code == 0, replaced.output
    assert warehouse_counts(workspace.warehouse) == (250, 250)


def test_a_run_stopped_by_bad_input_resumes_once_the_file_is_fixed(workspace: Workspace) -> None:
    data = workspace.root / "feed.jsonl"
    write_lines(data, 0, 200)
    with open(data, "ab") as handle:
        handle.write(b"not json\n" * 100)
    args = ("--input", str(data), "--key", "event_id", *BATCH, *TABLE)
    stopped = workspace.cli(*args)
    assert stopped.code == 2 and "--max-error-rate" in stopped.stderr, stopped.output

    write_lines(data, 0, 300)  # fixed: the staged first 200 lines are the same bytes
    for _ in range(2):  # the next scheduled run is not blocked either
        fixed = workspace.cli(*args)
        assert fixed.code == 0, fixed.output
    assert warehouse_counts(workspace.warehouse) == (300, 300)


def test_a_damaged_checkpoint_of_a_delivered_run_is_not_a_failure(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=200)
    first = workspace.cli("--input", str(data), "--run-id", "nightly")
    assert first.code == 0
    (workspace.hold / "runs" / "nightly" / "checkpoint.json").write_bytes(b"\x00garbage{")

    for args in (("--input", str(data)), ("--input", str(data), "--run-id", "nightly")):
        again = workspace.cli(*args)
        assert again.code == 0, again.output
        assert again.summary["status"] == "already_delivered" and again.summary["verified"] is True


def test_a_damaged_segment_is_named_in_one_line_and_repair_restages_it_from_hold1(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=600, duplicate_rate=0)
    args = ("--input", str(data), *BATCH)
    kill_after_batch(workspace, *args, batch=2)  # all staged, nothing loaded
    run_id = next((workspace.hold / "runs").iterdir()).name
    segment = segment_files(workspace.hold, run_id)[1]
    with open(segment, "r+b") as handle:
        handle.truncate(segment.stat().st_size // 2)

    for _ in range(2):  # the same answer again, not a promise to resume
        damaged = workspace.cli(*args)
        assert damaged.code == 2, damaged.output
        line = damaged.stderr.strip().splitlines()[-1]
        assert segment.name in line and run_id in line and f"repair --run-id {run_id}" in line
        assert "Traceback" not in damaged.output

    repaired = workspace.subcommand("repair", "--run-id", run_id)
    assert repaired.code == 0, repaired.output
    delivered = workspace.cli(*args)
    assert delivered.code == 0, delivered.output
    assert warehouse_counts(workspace.warehouse) == (600, 600)
    assert os.path.getsize(segment) > 0
