"""Running out of disk (a real file-size limit on the process, or a really full filesystem) stops
cleanly and resumably; a second run on the same hold directory is refused while the first one
holds it, but the warehouse stays readable while a run stages."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import pytest

from bench.events import write as write_events
from bqhold.tasks.core.summary import NO_RUN
from tests.conftest import Workspace, warehouse_counts
from tests.segments import read_segment, segment_files
from tests.small_disk import on_small_disk, small_disk_available


@pytest.mark.slow
def test_file_size_limit_mid_run_stops_cleanly_then_resumes_exactly_once(workspace: Workspace, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=60_000, duplicate_rate=0)

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (8 * 2**20, 8 * 2**20))

    full = subprocess.run(
        workspace.command("--input", str(data), "--key", "event_id", "--batch-size", "10000"),
        env=workspace.env(),
        preexec_fn=small_disk,
        capture_output=True,
        text=True,
    )
    assert full.returncode == 1, full.stdout + full.stderr
    last = full.stderr.strip().splitlines()[-1]
    assert last.startswith("bqhold: ") and "File too large" in last and "re-run" in last, last
    # HOLD₂ (Parquet segments, 60k keys) fits in 8 MB; the warehouse's write-ahead log does not.
    assert f"the DuckDB warehouse cannot be written (File too large: {workspace.warehouse}" in last, last
    assert "Traceback" not in full.stderr

    resumed = workspace.cli("--input", str(data), "--key", "event_id", "--batch-size", "10000")
    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert warehouse_counts(workspace.warehouse) == (60_000, 60_000)
    for segment in segment_files(workspace.hold):
        read_segment(segment)  # every HOLD₂ segment reads


def staging_in_background(workspace: Workspace, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """The local command started in the background (with `env` added), once it has committed its first segment."""
    run = subprocess.Popen(
        workspace.command(*args),
        env=workspace.env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not segment_files(workspace.hold):
        assert run.poll() is None and time.monotonic() < deadline, "the run never started staging"
        time.sleep(0.05)
    return run


@pytest.mark.slow
def test_second_run_on_the_same_hold_dir_is_refused_while_the_first_runs(workspace: Workspace, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=60_000, duplicate_rate=0)
    go_on = tmp_path / "go-on"
    hold = {"BQHOLD_WAIT_AT": "checkpoint_written@1", "BQHOLD_WAIT_FOR": str(go_on)}  # until the second has tried
    first = staging_in_background(
        workspace, "--input", str(data), "--key", "event_id", "--batch-size", "2000", env=hold
    )

    second = workspace.cli("--input", str(data), "--key", "event_id", "--run-id", "other")
    go_on.touch()
    assert second.code == 1
    assert "in use by another bqhold run" in second.stderr and "Traceback" not in second.output
    assert first.wait(timeout=120) == 0, first.stdout.read()


@pytest.mark.slow
@pytest.mark.skipif(not small_disk_available(), reason="needs root to mount a small tmpfs in a private namespace")
def test_a_rerun_while_the_disk_is_still_full_says_so_in_one_line_then_resumes(
    workspace: Workspace, tmp_path: Path
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=20_000, duplicate_rate=0)
    summary = str(workspace.root / "summary.json")  # beside the small disk, not on it
    # JSONL segments: 20,000 events in Parquet would fit the small disk.
    command = ("--input", str(data), "--batch-size", "2000", "--segment-format", "jsonl", "--summary-json", summary)
    run = {"run": workspace.command(*command)}
    run["read"] = [summary]
    steps = [run, run, {"resize": "64m"}, run]
    first, still_full, freed = on_small_disk(str(workspace.hold), "3m", steps, workspace.env())

    for result in (first, still_full):
        assert result["code"] == 1, result["stderr"]
        assert "Traceback" not in result["stderr"]
        ours = [line for line in result["stderr"].splitlines() if line.startswith("bqhold:")]
        assert len(ours) == 1 and "No space left" in ours[0] and "re-run" in ours[0], ours
    staged = json.loads(first["read"][summary])
    again = json.loads(still_full["read"][summary])
    assert again["status"] == "failed" and staged["rows_written"] > 0
    if again["run_id"] == NO_RUN:  # HOLD₂'s database itself needed room to open: no run could be chosen
        assert again["rows_written"] == 0 and "rows read" not in still_full["stdout"], "no block of zeros for a run"
    else:
        assert again["run_id"] == staged["run_id"] and again["rows_written"] == staged["rows_written"], (
            "the summary counts what is staged"
        )

    assert freed["code"] == 0, freed["stderr"]
    assert "resuming run" in freed["stderr"]
    assert warehouse_counts(workspace.warehouse) == (20_000, 20_000)


@pytest.mark.slow
def test_the_warehouse_can_be_read_while_a_run_is_staging(workspace: Workspace, tmp_path: Path) -> None:
    import duckdb

    with duckdb.connect(str(workspace.warehouse)) as con:  # yesterday's delivery, which analysts query
        con.execute("CREATE TABLE yesterday AS SELECT 42 AS answer")
    data = write_events(tmp_path / "events.jsonl", rows=20_000, duplicate_rate=0)
    go_on = tmp_path / "go-on"
    hold = {"BQHOLD_WAIT_AT": "checkpoint_written@1", "BQHOLD_WAIT_FOR": str(go_on)}  # held mid-staging
    run = staging_in_background(workspace, "--input", str(data), "--key", "event_id", "--batch-size", "1000", env=hold)

    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        assert con.execute("SELECT answer FROM yesterday").fetchone() == (42,)
    assert run.poll() is None, "still staging while it was read"
    go_on.touch()
    assert run.wait(timeout=120) == 0, run.stdout.read()
    assert warehouse_counts(workspace.warehouse) == (20_000, 20_000)
