"""Load jobs as BigQuery keeps them: a job found under bqhold's id is checked to be this load's —
the real flows, client and emulator."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from google.cloud import bigquery

from flows.generic import generic_flow
from flows.redeliver import redeliver_flow
from tasks.core.errors import ConfigError
from tests.bigquery_checks import count, job_ids_of


@pytest.fixture
def target(bigquery_emulator_env, bigquery_dataset: bigquery.Dataset) -> str:
    return f"bigquery://{bigquery_dataset.project}/{bigquery_dataset.dataset_id}"


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "things.jsonl"
    path.write_text("".join(json.dumps({"id": f"t{n}", "n": n}) + "\n" for n in range(30)))
    return path


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
