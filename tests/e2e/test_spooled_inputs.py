"""HOLD₁ that is not a plain local file (tasks/core/spool.py): objects in Cloud Storage (the
emulator, the real client) and compressed files, killed and resumed by the real command.

Counted as a user would: every record exactly once in the warehouse, a replaced object refused by
name, a missing bucket in one line with exit 2.
"""

from __future__ import annotations

import gzip
import shutil
import signal
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from bench.events import write as write_events
from bqhold.tasks.core.faults import BATCH_STEPS, KILL_ENV
from tests.conftest import Workspace, expected_records

OBJECTS = 20  # of about 150 lines each


def _warehouse_ids(workspace: Workspace) -> list[str]:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return sorted(row[0] for row in con.execute("SELECT event_id FROM events").fetchall())


@pytest.fixture
def events(tmp_path: Path) -> Path:
    return write_events(tmp_path / "events.jsonl", rows=3_000, bad_lines=True)


@pytest.fixture
def exports(events: Path, gcs_bucket, gcs_emulator_env) -> str:
    """The events as 20 objects of a bucket; the glob that matches them (and no other object)."""
    lines = [line + b"\n" for line in events.read_bytes().split(b"\n")[:-1]]  # a bare \r is inside a line
    per_object = -(-len(lines) // OBJECTS)
    for index in range(OBJECTS):
        part = b"".join(lines[index * per_object : (index + 1) * per_object])
        gcs_bucket.blob(f"exports/2026-11-29/part-{index:02d}.jsonl").upload_from_string(part)
    gcs_bucket.blob("exports/2026-11-29/_SUCCESS").upload_from_string(b"")
    return f"gs://{gcs_bucket.name}/exports/2026-11-29/*.jsonl"


def test_a_glob_over_twenty_objects_killed_and_resumed_delivers_each_record_once(
    workspace: Workspace, events: Path, exports: str
) -> None:
    ids, bad = expected_records(events)
    args = ("--input", exports, "--table", "events", "--key", "event_id", "--batch-size", "100")

    killed = workspace.cli(*args, env={KILL_ENV: "checkpoint_written@7"})
    assert killed.code == -signal.SIGKILL, killed.output
    shutil.rmtree(workspace.hold / "spool")  # a new machine has no copy: the object is read again
    resumed = workspace.cli(*args)

    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert resumed.summary["rows_written"] == len(ids) and resumed.summary["rows_quarantined"] == bad
    assert _warehouse_ids(workspace) == sorted(ids)
    assert not list((workspace.hold / "spool").glob("*")), "copies of inputs read to the end are removed"
    again = workspace.cli(*args)
    assert again.code == 0 and again.summary["status"] == "already_delivered", again.output


def test_an_object_replaced_between_a_kill_and_the_resume_is_refused_by_name(
    workspace: Workspace, events: Path, exports: str, gcs_bucket
) -> None:
    args = ("--input", exports, "--table", "events", "--batch-size", "100")
    killed = workspace.cli(*args, env={KILL_ENV: "checkpoint_written@4"})  # in the middle of part-02
    assert killed.code == -signal.SIGKILL, killed.output
    replaced = gcs_bucket.blob("exports/2026-11-29/part-02.jsonl")
    replaced.upload_from_string(replaced.download_as_bytes().replace(b'"event_id"', b'"event_id" ', 1))

    refused = workspace.cli(*args)

    assert refused.code == 2, refused.output
    assert f"gs://{gcs_bucket.name}/exports/2026-11-29/part-02.jsonl was replaced since it was staged" in refused.output
    assert "Traceback" not in refused.output
    fresh = workspace.cli(*args, "--fresh")
    assert fresh.code == 0, fresh.output
    assert fresh.summary["rows_read"] == len(events.read_bytes().split(b"\n")) - 1


def test_a_missing_bucket_is_one_line_and_exit_2(workspace: Workspace, gcs_emulator_env) -> None:
    result = workspace.cli("--input", "gs://no-such-bucket-bqhold/exports/*.jsonl", "--table", "events")

    assert result.code == 2, result.output
    assert "no-such-bucket-bqhold" in result.output and "bucket exists" in result.output
    assert "Traceback" not in result.output


def _zstd(source: Path, target: Path) -> Path:
    with pa.CompressedOutputStream(str(target), "zstd") as out:
        out.write(source.read_bytes())
    return target


@pytest.mark.slow
@pytest.mark.parametrize(
    ("suffix", "step"),
    [(".jsonl.gz", f"{step}@3") for step in BATCH_STEPS]
    + [(".jsonl.zst", "segment_renamed@3"), (".jsonl.zst", "checkpoint_written@3")],
)
def test_a_compressed_input_killed_and_resumed_delivers_each_record_once(
    workspace: Workspace, events: Path, tmp_path: Path, suffix: str, step: str
) -> None:
    ids, bad = expected_records(events)
    compressed = tmp_path / f"events{suffix}"
    if suffix == ".jsonl.gz":
        compressed.write_bytes(gzip.compress(events.read_bytes()))
    else:
        _zstd(events, compressed)
    args = ("--input", str(compressed), "--table", "events", "--key", "event_id", "--batch-size", "500")

    killed = workspace.cli(*args, env={KILL_ENV: step})
    assert killed.code == -signal.SIGKILL, killed.output
    shutil.rmtree(workspace.hold / "spool")  # resumed elsewhere: decompressed again from the start
    resumed = workspace.cli(*args)

    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert resumed.summary["rows_written"] == len(ids) and resumed.summary["rows_quarantined"] == bad
    assert _warehouse_ids(workspace) == sorted(ids)


def test_a_compressed_file_that_is_not_what_its_suffix_says_is_one_line(workspace: Workspace, tmp_path: Path) -> None:
    fake = tmp_path / "events.jsonl.gz"
    fake.write_bytes(b'{"event_id": "e1"}\n')

    result = workspace.cli("--input", str(fake))

    assert result.code == 2, result.output
    assert "events.jsonl.gz: cannot be read as gzip" in result.output
    assert "Traceback" not in result.output


def test_a_damaged_segment_of_a_gs_run_is_repaired_from_the_objects(
    workspace: Workspace, events: Path, exports: str
) -> None:
    ids, _ = expected_records(events)
    args = ("--input", exports, "--table", "events", "--key", "event_id", "--batch-size", "1000")
    killed = workspace.cli(*args, env={KILL_ENV: "load_committed"})  # staged, spool copies removed
    assert killed.code == -signal.SIGKILL, killed.output
    run_id = next((workspace.hold / "runs").iterdir()).name
    segment = sorted((workspace.hold / "runs" / run_id / "segments").glob("*.parquet"))[1]
    segment.write_bytes(segment.read_bytes()[:100])

    repaired = workspace.subcommand("repair", "--run-id", run_id)

    assert repaired.code == 0, repaired.output
    assert "re-staged 1 damaged segment(s)" in repaired.output
    delivered = workspace.cli(*args)
    assert delivered.code == 0, delivered.output
    assert _warehouse_ids(workspace) == sorted(ids)
