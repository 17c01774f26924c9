"""Running out of disk (a real file-size limit on the process) stops cleanly and resumably; a
second run on the same hold directory is refused while the first one holds it."""

from __future__ import annotations

import json
import resource
import subprocess
import time
from pathlib import Path

import pytest

from bench.events import write as write_events
from tests.conftest import Workspace, warehouse_counts


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
    assert "Traceback" not in full.stderr

    resumed = workspace.cli("--input", str(data), "--key", "event_id", "--batch-size", "10000")
    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert warehouse_counts(workspace.warehouse) == (60_000, 60_000)
    for segment in (workspace.hold / "runs").glob("*/segments/*.jsonl"):
        for line in segment.read_text().splitlines():
            json.loads(line)


@pytest.mark.slow
def test_second_run_on_the_same_hold_dir_is_refused_while_the_first_runs(workspace: Workspace, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=60_000, duplicate_rate=0)
    first = subprocess.Popen(
        workspace.command("--input", str(data), "--key", "event_id", "--batch-size", "2000"),
        env=workspace.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while not list((workspace.hold / "runs").glob("*/segments/*.jsonl")):
        assert first.poll() is None and time.monotonic() < deadline, "the first run never started staging"
        time.sleep(0.05)

    second = workspace.cli("--input", str(data), "--key", "event_id", "--run-id", "other")
    assert second.code == 1
    assert "in use by another bqhold run" in second.stderr and "Traceback" not in second.output
    assert first.wait(timeout=120) == 0, first.stdout.read()
