"""A durable HOLD₂ (`--hold-url`, docs/design.md, HOLD₂ layout): the real command against the
Cloud Storage emulator (with GCS's generation preconditions), SIGKILLed at every named step, its
local hold dir and PREFECT_HOME wiped as a new container would find them, and run again.

What a user would notice is counted: every input record exactly once in the warehouse, verified,
and a second run on the same prefix refused with who holds it.
"""

from __future__ import annotations

import random
import shutil
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import unquote

import duckdb
import pytest

from bench.events import write as write_events
from bqhold.tasks.core.faults import BATCH_STEPS, DURABLE_STEPS, KILL_ENV, LOAD_STEPS, WAIT_ENV, WAIT_FOR_ENV
from tests.conftest import Workspace, expected_records
from tests.faultproxy import FaultProxy

BATCH_SIZE = 400
KILLED_BATCH = 2
LEASE_S = 1.0  # a killed run's lease is taken over this long after


@pytest.fixture
def events_file(tmp_path: Path) -> Path:
    return write_events(tmp_path / "events.jsonl", rows=2_000, bad_lines=True)


@pytest.fixture
def durable(workspace: Workspace, gcs_bucket, gcs_emulator_env) -> tuple[str, ...]:
    """The options of a run on a durable HOLD₂ in a fresh bucket of the emulator."""
    return ("--hold-url", f"gs://{gcs_bucket.name}/holds/events", "--hold-lease-s", str(LEASE_S))


def _new_container(workspace: Workspace) -> dict[str, str]:
    """Wipe what a new container would not have: the hold dir, and a PREFECT_HOME of its own."""
    shutil.rmtree(workspace.hold, ignore_errors=True)
    home = workspace.root / f"prefect-home-{time.monotonic_ns()}"
    return {"PREFECT_HOME": str(home)}


def assert_delivered_once(workspace: Workspace, ids: set[str], bad: int, summary: dict) -> None:
    assert summary["rows_written"] == len(ids)
    assert summary["rows_quarantined"] == bad
    assert summary["rows_loaded"] == len(ids)
    assert summary["verified"] is True
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        rows = con.execute("SELECT event_id FROM events").fetchall()
    assert sorted(row[0] for row in rows) == sorted(ids), "the warehouse holds each record exactly once"


@pytest.mark.slow
@pytest.mark.parametrize("step", BATCH_STEPS + DURABLE_STEPS + LOAD_STEPS)
def test_sigkill_at_step_then_a_new_container_resumes_exactly_once(
    workspace: Workspace, events_file: Path, durable: tuple[str, ...], step: str
) -> None:
    ids, bad = expected_records(events_file)
    at = f"{step}@{KILLED_BATCH}" if step in BATCH_STEPS + DURABLE_STEPS else step
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE), *durable)

    killed = workspace.cli(*args, env={KILL_ENV: at})
    assert killed.code == -signal.SIGKILL, killed.output

    time.sleep(LEASE_S + 0.5)  # the dead container's lease runs out
    resumed = workspace.cli(*args, env=_new_container(workspace))
    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert_delivered_once(workspace, ids, bad, resumed.summary)


@pytest.mark.slow
def test_ten_kills_at_random_steps_each_followed_by_a_new_container(
    workspace: Workspace, tmp_path: Path, durable: tuple[str, ...]
) -> None:
    events = write_events(tmp_path / "many.jsonl", rows=6_000, bad_lines=True)
    ids, bad = expected_records(events)
    args = ("--input", str(events), "--table", "events", "--key", "event_id", "--batch-size", "250", *durable)
    chosen = random.Random(12)
    # Nine kills at a random step of a later batch each time, the tenth at a random step of the load.
    kills = [f"{chosen.choice(BATCH_STEPS + DURABLE_STEPS)}@{2 * k + chosen.randint(0, 1)}" for k in range(9)]
    kills.append(chosen.choice(LOAD_STEPS))
    for at in kills:
        killed = workspace.cli(*args, env={**_new_container(workspace), KILL_ENV: at})
        assert killed.code == -signal.SIGKILL, f"not killed at {at}: {killed.output}"
        time.sleep(LEASE_S + 0.5)
    final = workspace.cli(*args, env=_new_container(workspace))
    assert final.code == 0, final.output
    assert "resuming run" in final.output
    assert_delivered_once(workspace, ids, bad, final.summary)


def test_a_new_container_reaches_its_first_new_batch_without_reading_a_segment(
    workspace: Workspace, events_file: Path, durable: tuple[str, ...], gcs_emulator
) -> None:
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE), *durable)
    with FaultProxy(gcs_emulator.endpoint) as proxy:  # no faults: it shows what was read
        through = {"STORAGE_EMULATOR_HOST": proxy.endpoint}
        killed = workspace.cli(*args, env={**through, KILL_ENV: f"checkpoint_written@{KILLED_BATCH}"})
        assert killed.code == -signal.SIGKILL, killed.output
        time.sleep(LEASE_S + 0.5)
        before = len(proxy.requests)
        at_next = workspace.cli(*args, env={**through, **_new_container(workspace), KILL_ENV: "batch_read@3"})
        read = [unquote(path) for method, path in proxy.requests[before:] if method == "GET"]

    assert at_next.code == -signal.SIGKILL, at_next.output
    downloads = [path for path in read if "alt=media" in path]
    assert [path for path in downloads if "/journal/" in path], read
    assert not [path for path in downloads if "/segments/" in path or "/quarantine/" in path], downloads


def test_a_second_run_on_the_prefix_is_refused_and_the_data_stays_whole(
    workspace: Workspace, events_file: Path, durable: tuple[str, ...], tmp_path: Path
) -> None:
    ids, bad = expected_records(events_file)
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE), *durable)
    go_on = tmp_path / "go-on"
    first = subprocess.Popen(
        workspace.command(*args),
        cwd=workspace.root,
        env=workspace.env({WAIT_ENV: "checkpoint_written@1", WAIT_FOR_ENV: str(go_on)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    other = workspace.root / "other-container"
    deadline = time.monotonic() + 60
    while not list(workspace.hold.glob("runs/*/checkpoint.json")) and time.monotonic() < deadline:
        time.sleep(0.2)

    second = workspace.cli(*args, "--hold-dir", str(other / "hold"), env={"PREFECT_HOME": str(other / "home")})

    assert second.code == 1, second.output
    assert "is in use by run" in second.output and "lease was renewed" in second.output
    assert "Traceback" not in second.output
    go_on.touch()
    output, _ = first.communicate(timeout=120)
    assert first.returncode == 0, output
    again = workspace.cli(*args, "--hold-dir", str(other / "hold"), env={"PREFECT_HOME": str(other / "home")})
    assert again.code == 0, again.output
    assert again.summary["status"] == "already_delivered"
    assert_delivered_once(workspace, ids, bad, {**again.summary, "rows_written": len(ids), "rows_quarantined": bad})


def test_a_missing_bucket_is_one_line_and_exit_2(workspace: Workspace, events_file: Path, gcs_emulator_env) -> None:
    result = workspace.cli("--input", str(events_file), "--hold-url", "gs://no-such-bucket-bqhold/hold")

    assert result.code == 2, result.output
    assert "no-such-bucket-bqhold" in result.output and "bucket exists" in result.output
    assert "Traceback" not in result.output


def test_a_hold_dir_is_the_working_copy_of_one_durable_hold_and_cleanup_empties_its_segments(
    workspace: Workspace, events_file: Path, durable: tuple[str, ...], gcs_bucket
) -> None:
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE))
    delivered = workspace.cli(*args, *durable)
    assert delivered.code == 0, delivered.output
    prefix = durable[1].removeprefix(f"gs://{gcs_bucket.name}/")
    segments = [blob.name for blob in gcs_bucket.list_blobs(prefix=f"{prefix}/runs/") if "/segments/" in blob.name]
    assert len(segments) == delivered.summary["batches"]

    alone = workspace.cli(*args)
    assert alone.code == 2, alone.output
    assert f"is the working copy of the durable HOLD₂ {durable[1]}: run with --hold-url" in alone.output

    local = workspace.cli(*args, "--hold-dir", str(workspace.root / "local-hold"), "--table", "other")
    assert local.code == 0, local.output
    joined = workspace.cli(*args, *durable, "--hold-dir", str(workspace.root / "local-hold"))
    assert joined.code == 2, joined.output
    assert "holds a HOLD₂ of its own" in joined.output and "Traceback" not in joined.output

    cleaned = workspace.subcommand("cleanup", "--apply", *durable, env=_new_container(workspace))
    assert cleaned.code == 0, cleaned.output + cleaned.stderr
    left = [blob.name for blob in gcs_bucket.list_blobs(prefix=f"{prefix}/")]
    assert not [name for name in left if "/segments/" in name], left
    assert any("/journal/" in name for name in left)
