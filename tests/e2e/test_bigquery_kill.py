"""SIGKILL after BigQuery finished a load job but before HOLD₂ recorded it: the re-run re-attaches
to that job (409 on its deterministic id) instead of loading the data a second time."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import time

import pytest
from google.cloud import storage

from bench.events import write as write_events
from bqhold.tasks.core.faults import KILL_ENV
from tests.bigquery_checks import RunningLoadJobs, counts, job_ids_of, warehouse_url
from tests.conftest import Workspace, expected_records
from tests.faultproxy import FaultProxy


def bucket_run(workspace: Workspace, run_id: str, dataset, bigquery_emulator, gcs_emulator):
    """1,500 events in 3 batches into the emulator's `dataset` as run `run_id`: the input, the
    command's arguments (a bucket's options to add) and the environment naming both emulators."""
    data = write_events(workspace.root / "events.jsonl", rows=1500)
    args = (
        *("--input", str(data), "--key", "event_id", "--batch-size", "500", "--run-id", run_id),
        *("--warehouse", warehouse_url(dataset)),
    )
    env = {"BIGQUERY_EMULATOR_HOST": bigquery_emulator.endpoint, "STORAGE_EMULATOR_HOST": gcs_emulator.endpoint}
    return data, args, env


def test_kill_between_load_job_done_and_ledger_then_rerun_reattaches(
    workspace: Workspace, bigquery_emulator, bigquery_client, bigquery_dataset
) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=1500)
    env = {"BIGQUERY_EMULATOR_HOST": bigquery_emulator.endpoint}
    args = (
        "--input",
        str(data),
        "--key",
        "event_id",
        "--batch-size",
        "500",
        "--run-id",
        "killed-load",
        "--warehouse",
        warehouse_url(bigquery_dataset),
    )
    killed = workspace.cli(*args, env={**env, KILL_ENV: "load_committed"})
    assert killed.code == -signal.SIGKILL, killed.output
    jobs_before = job_ids_of(bigquery_client, "killed-load")
    assert len(jobs_before) == 1, "the load job ran before the kill"

    resumed = workspace.cli(*args, env=env)
    assert resumed.code == 0, resumed.output
    jobs_after = job_ids_of(bigquery_client, "killed-load")
    assert jobs_after == jobs_before, "re-attached to the finished job instead of loading again"
    assert counts(bigquery_client, bigquery_dataset, "events") == (resumed.summary["rows_written"],) * 2
    assert resumed.summary["verified"] is True


@pytest.mark.parametrize("step", ["bucket_staged", "load_committed"])
def test_kill_while_loading_through_a_bucket_then_rerun_uploads_nothing_twice(
    step: str,
    workspace: Workspace,
    bigquery_emulator,
    gcs_emulator,
    gcs_bucket: storage.Bucket,
    bigquery_client,
    bigquery_dataset,
) -> None:
    run_id = f"bucket-{step.replace('_', '-')}"
    _, args, env = bucket_run(workspace, run_id, bigquery_dataset, bigquery_emulator, gcs_emulator)
    args = (*args, "--staging-bucket", f"gs://{gcs_bucket.name}/loads")
    killed = workspace.cli(*args, env={**env, KILL_ENV: step})
    assert killed.code == -signal.SIGKILL, killed.output
    staged = sorted(blob.name for blob in gcs_bucket.client.list_blobs(gcs_bucket.name))
    jobs = job_ids_of(bigquery_client, run_id)
    if step == "bucket_staged":
        assert len(staged) == 1 and jobs == [], "killed with the group's one Parquet file uploaded, before the job"
    else:
        assert staged == [] and len(jobs) == 1, "killed after the job loaded and its objects were removed"

    with FaultProxy(gcs_emulator.endpoint) as watched:
        resumed = workspace.cli(*args, env={**env, "STORAGE_EMULATOR_HOST": watched.endpoint})

    assert resumed.code == 0, resumed.output
    assert counts(bigquery_client, bigquery_dataset, "events") == (resumed.summary["rows_written"],) * 2
    [job] = job_ids_of(bigquery_client, run_id)
    if jobs:
        assert [job] == jobs, "the finished job was taken, not sent again"
    else:
        assert re.fullmatch(rf"bqhold_{run_id}-b000000-000002_h[0-9a-f]+_d0_a0", job), job
    uploads = [(method, path) for method, path in watched.requests if method in ("POST", "PUT")]
    assert uploads == [], "nothing already in the bucket, or already loaded, was uploaded again"
    assert list(gcs_bucket.client.list_blobs(gcs_bucket.name)) == []


def test_sigterm_while_waiting_on_a_load_job_stops_and_the_rerun_takes_that_jobs_outcome(
    workspace: Workspace, bigquery_emulator, bigquery_client, bigquery_dataset
) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=300, duplicate_rate=0)
    args = (
        *("--input", str(data), "--run-id", "waiting"),
        *("--warehouse", warehouse_url(bigquery_dataset)),
    )
    jobs = RunningLoadJobs()
    with FaultProxy(bigquery_emulator.endpoint) as proxy:
        proxy.rewrite_responses(jobs.rewrite)
        env = workspace.env({"BIGQUERY_EMULATOR_HOST": proxy.endpoint})
        process = subprocess.Popen(
            workspace.command(*args), cwd=workspace.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            deadline = time.monotonic() + 90
            while jobs.running_answers < 2 and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.1)
            assert jobs.running_answers >= 2, "the run never polled its load job"
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
                process.communicate()
    assert process.returncode == 143, stderr.decode()
    assert "while waiting for BigQuery load job" in stderr.decode() and "re-run" in stderr.decode()

    resumed = workspace.cli(*args, env={"BIGQUERY_EMULATOR_HOST": bigquery_emulator.endpoint})

    assert resumed.code == 0, resumed.output
    assert len(job_ids_of(bigquery_client, "waiting")) == 1, "the job of the stopped run was taken, not sent again"
    assert counts(bigquery_client, bigquery_dataset, "events") == (resumed.summary["rows_written"],) * 2


@pytest.mark.parametrize("step", ["journal_written@1", "load_committed", "load_recorded"])
def test_kill_with_a_durable_hold_then_a_new_container_loads_into_bigquery_exactly_once(
    step: str,
    workspace: Workspace,
    bigquery_emulator,
    gcs_emulator,
    gcs_bucket: storage.Bucket,
    bigquery_client,
    bigquery_dataset,
) -> None:
    run_id = f"durable-{step.split('@')[0].replace('_', '-')}"
    data, args, env = bucket_run(workspace, run_id, bigquery_dataset, bigquery_emulator, gcs_emulator)
    args = (*args, "--hold-url", f"gs://{gcs_bucket.name}/hold", "--hold-lease-s", "1")
    killed = workspace.cli(*args, env={**env, KILL_ENV: step})
    assert killed.code == -signal.SIGKILL, killed.output
    jobs = job_ids_of(bigquery_client, run_id)
    time.sleep(1.5)  # the dead container's lease expires
    shutil.rmtree(workspace.hold)  # a new container: no hold dir, its own PREFECT_HOME
    resumed = workspace.cli(*args, env={**env, "PREFECT_HOME": str(workspace.root / "new-home")})

    assert resumed.code == 0, resumed.output
    assert resumed.summary["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "events") == (resumed.summary["rows_written"],) * 2
    assert resumed.summary["rows_written"] == len(expected_records(data)[0])
    if jobs:  # the job the dead container ran is found under the same id (the hold id is in the journal)
        assert job_ids_of(bigquery_client, run_id) == jobs
