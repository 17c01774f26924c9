"""Load jobs as BigQuery keeps them: a job found under bqhold's id is checked to be this load's,
a job that failed in an earlier process is a spent attempt, and a job that runs past
`job_timeout_s` is cancelled and waited for — the real flows, client and emulator (a proxy plays
the slow jobs the emulator cannot)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import bigquery

from bqhold.flows.generic import generic_flow
from bqhold.flows.redeliver import redeliver_flow
from bqhold.tasks.core.errors import ConfigError, ExitCode, WarehouseRejected
from tests.bigquery_checks import RunningLoadJobs, count, job_ids_of, load_jobs_of, table_id, warehouse_url
from tests.conftest import numbered_records
from tests.faultproxy import FaultProxy


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return numbered_records(tmp_path / "things.jsonl", "t", 30)


def test_a_job_that_failed_in_an_earlier_run_is_spent_and_the_fixed_rerun_starts_a_new_one(
    prefect_api, tmp_path: Path, target: str, data: Path, bigquery_client, bigquery_dataset
) -> None:
    things = table_id(bigquery_dataset, "things")
    bigquery_client.create_table(
        bigquery.Table(things, schema=[bigquery.SchemaField("note", "STRING", mode="REQUIRED")])
    )
    common = {"input": str(data), "warehouse": target, "hold_dir": str(tmp_path / "hold"), "run_id": "strict"}

    failed = generic_flow(**common, return_state=True)

    error = failed.result(raise_on_failure=False)
    assert isinstance(error, WarehouseRejected) and error.exit_code == ExitCode.UNUSABLE_INPUT, error
    assert "re-run the same command" in str(error) and "new load job" in str(error), error
    bigquery_client.delete_table(things)  # the cause, fixed

    fixed = generic_flow(**common)

    assert fixed["verified"] is True
    assert count(bigquery_client, bigquery_dataset, "things") == 30
    states = {job.job_id[-3:]: job.error_result is None for job in load_jobs_of(bigquery_client, "strict")}
    assert states == {"_a0": False, "_a1": True}, "attempt 0 failed before the fix, attempt 1 loaded"


def test_a_job_of_a_copied_hold_dir_into_another_table_is_not_taken_as_this_loads(
    prefect_api, tmp_path: Path, target: str, data: Path, bigquery_client, bigquery_dataset
) -> None:
    original = tmp_path / "hold"
    assert generic_flow(input=str(data), warehouse=target, hold_dir=str(original), run_id="copied", table="things")[
        "verified"
    ]
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    assert redeliver_flow(run_id="copied", hold_dir=str(original), table="first")["verified"]

    state = redeliver_flow(run_id="copied", hold_dir=str(copy), table="second", return_state=True)

    error = state.result(raise_on_failure=False)
    assert isinstance(error, ConfigError), error
    [job] = [job_id for job_id in job_ids_of(bigquery_client, "copied") if job_id.endswith("_d1_a0")]
    assert job in str(error) and "first" in str(error) and "copied" in str(error), error
    assert count(bigquery_client, bigquery_dataset, "first") == 30


@pytest.fixture
def slow_jobs(bigquery_emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[RunningLoadJobs]:
    """The flow's client reaches the emulator through a proxy that reports load jobs as RUNNING."""
    jobs = RunningLoadJobs()
    with FaultProxy(bigquery_emulator.endpoint) as proxy:
        proxy.rewrite_responses(jobs.rewrite)
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", proxy.endpoint)
        yield jobs


def test_a_job_still_running_past_the_timeout_is_cancelled_and_its_outcome_used(
    prefect_api, tmp_path: Path, bigquery_dataset, data: Path, slow_jobs: RunningLoadJobs, bigquery_client
) -> None:
    slow_jobs.stuck = False  # the cancel request is answered: the job then shows it is DONE
    summary = generic_flow(
        input=str(data),
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
        run_id="slow",
        job_timeout_s=1,
    )

    assert summary["verified"] is True and len(slow_jobs.cancelled) == 1
    assert len(job_ids_of(bigquery_client, "slow")) == 1, "the cancelled job had loaded: no second job"
    assert count(bigquery_client, bigquery_dataset, "things") == 30


def test_a_job_that_never_finishes_even_cancelled_fails_resumably_without_a_second_job(
    prefect_api, tmp_path: Path, bigquery_dataset, data: Path, slow_jobs: RunningLoadJobs, bigquery_client
) -> None:
    state = generic_flow(
        input=str(data),
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
        run_id="stuck",
        job_timeout_s=1,
        return_state=True,
    )

    error = state.result(raise_on_failure=False)
    assert getattr(error, "exit_code", None) == ExitCode.RESUMABLE, error
    assert "still RUNNING" in str(error) and "re-run" in str(error), error
    assert len(slow_jobs.cancelled) == 1 and len(job_ids_of(bigquery_client, "stuck")) == 1
