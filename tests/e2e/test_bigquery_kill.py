"""SIGKILL after BigQuery finished a load job but before HOLD₂ recorded it: the re-run re-attaches
to that job (409 on its deterministic id) instead of loading the data a second time."""

from __future__ import annotations

import signal

from bench.events import write as write_events
from tasks.core.faults import KILL_ENV
from tests.conftest import Workspace


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
        f"bigquery://{bigquery_dataset.project}/{bigquery_dataset.dataset_id}",
    )
    killed = workspace.cli(*args, env={**env, KILL_ENV: "load_committed"})
    assert killed.code == -signal.SIGKILL, killed.output
    jobs_before = [j.job_id for j in bigquery_client.list_jobs() if j.job_id.startswith("bqhold_killed")]
    assert len(jobs_before) == 1, "the load job ran before the kill"

    resumed = workspace.cli(*args, env=env)
    assert resumed.code == 0, resumed.output
    jobs_after = [j.job_id for j in bigquery_client.list_jobs() if j.job_id.startswith("bqhold_killed")]
    assert jobs_after == jobs_before, "re-attached to the finished job instead of loading again"
    table = f"{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.events"
    row = next(
        iter(bigquery_client.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS d FROM `{table}`").result())
    )
    assert row["n"] == row["d"] == resumed.summary["rows_written"]
    assert resumed.summary["verified"] is True
