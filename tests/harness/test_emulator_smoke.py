"""Smoke tests: the real google-cloud-bigquery client against the local-bigquery emulator."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
from google.api_core.exceptions import BadRequest, Conflict
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

SCHEMA = [
    bigquery.SchemaField("name", "STRING"),
    bigquery.SchemaField("qty", "INT64"),
    bigquery.SchemaField("price", "FLOAT64"),
    bigquery.SchemaField("active", "BOOL"),
    bigquery.SchemaField("event_ts", "TIMESTAMP"),
    bigquery.SchemaField("_run_id", "STRING", mode="REQUIRED"),
    bigquery.SchemaField("_batch", "INT64", mode="REQUIRED"),
]
ROWS = [
    {
        "name": "alpha",
        "qty": 1,
        "price": 1.5,
        "active": True,
        "event_ts": "2024-01-01T00:00:00Z",
        "_run_id": "run-1",
        "_batch": 0,
    },
    {
        "name": "beta",
        "qty": 2,
        "price": 2.25,
        "active": False,
        "event_ts": "2024-01-02 03:04:05.123456+00:00",
        "_run_id": "run-1",
        "_batch": 0,
    },
    {
        "name": "gamma",
        "qty": 3,
        "price": -0.5,
        "active": True,
        "event_ts": "2024-02-29T23:59:59.5Z",
        "_run_id": "run-1",
        "_batch": 1,
    },
]


def _job_id(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"  # job ids are project-wide in the session's emulator


def _ndjson(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _load(client: bigquery.Client, table: str, path: Path, job_id: str, **config: object) -> bigquery.LoadJob:
    job_config = bigquery.LoadJobConfig(
        source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
        write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
        **config,
    )
    with path.open("rb") as handle:
        return client.load_table_from_file(handle, table, job_id=job_id, job_config=job_config)


def _count(client: bigquery.Client, table: str, run: str, batch: int) -> int:
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("run", "STRING", run),
            bigquery.ScalarQueryParameter("b", "INT64", batch),
        ]
    )
    sql = f"SELECT COUNT(*) AS n FROM `{table}` WHERE _run_id = @run AND _batch = @b"
    return next(iter(client.query_and_wait(sql, job_config=config)))["n"]


@pytest.fixture
def table(bigquery_client: bigquery.Client, bigquery_dataset: bigquery.Dataset) -> str:
    created = bigquery_client.create_table(
        bigquery.Table(f"{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.deliveries", schema=SCHEMA)
    )
    assert [(f.name, f.field_type, f.mode) for f in created.schema] == [
        ("name", "STRING", "NULLABLE"),
        ("qty", "INTEGER", "NULLABLE"),
        ("price", "FLOAT", "NULLABLE"),
        ("active", "BOOLEAN", "NULLABLE"),
        ("event_ts", "TIMESTAMP", "NULLABLE"),
        ("_run_id", "STRING", "REQUIRED"),
        ("_batch", "INTEGER", "REQUIRED"),
    ]
    return f"{created.project}.{created.dataset_id}.{created.table_id}"


def test_load_ndjson_and_count_with_parameters(bigquery_client: bigquery.Client, table: str, tmp_path: Path) -> None:
    job_id = _job_id("smoke-load")
    job = _load(bigquery_client, table, _ndjson(tmp_path / "rows.json", ROWS), job_id)
    job.result()

    assert (job.job_id, job.state, job.output_rows, job.error_result) == (job_id, "DONE", 3, None)
    assert _count(bigquery_client, table, "run-1", 0) == 2
    assert _count(bigquery_client, table, "run-1", 1) == 1
    assert _count(bigquery_client, table, "run-2", 0) == 0
    got = [dict(row) for row in bigquery_client.list_rows(table)]
    assert sorted(got, key=lambda r: r["qty"])[1] == {
        "name": "beta",
        "qty": 2,
        "price": 2.25,
        "active": False,
        "event_ts": datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=UTC),
        "_run_id": "run-1",
        "_batch": 0,
    }


def test_same_job_id_conflicts_and_get_job_returns_done_job(
    bigquery_client: bigquery.Client, table: str, tmp_path: Path
) -> None:
    path, job_id = _ndjson(tmp_path / "rows.json", ROWS), _job_id("smoke-load-dup")
    _load(bigquery_client, table, path, job_id).result()

    with pytest.raises(Conflict):
        _load(bigquery_client, table, path, job_id)

    job = bigquery_client.get_job(job_id)
    assert isinstance(job, bigquery.LoadJob)
    assert (job.state, job.output_rows, job.error_result) == ("DONE", 3, None)
    assert job.destination.table_id == "deliveries"
    assert _count(bigquery_client, table, "run-1", 0) == 2  # the rejected resubmission added none


def test_failed_load_is_a_done_job_with_error_result(
    bigquery_client: bigquery.Client, table: str, tmp_path: Path
) -> None:
    bad = [{**ROWS[0], "qty": "not-a-number"}, ROWS[1]]
    job_id = _job_id("smoke-load-bad")
    job = _load(bigquery_client, table, _ndjson(tmp_path / "bad.json", bad), job_id)

    with pytest.raises(BadRequest):
        job.result()
    stored = bigquery_client.get_job(job_id)
    assert stored.state == "DONE" and stored.error_result is not None
    assert _count(bigquery_client, table, "run-1", 0) == 0  # all or nothing


def test_load_adds_column_with_allow_field_addition(
    bigquery_client: bigquery.Client, table: str, tmp_path: Path
) -> None:
    rows = [{**ROWS[0], "_batch": 7, "note": "new column"}]
    path = _ndjson(tmp_path / "wide.json", rows)
    job = _load(
        bigquery_client,
        table,
        path,
        _job_id("smoke-load-wide"),
        schema=[*SCHEMA, bigquery.SchemaField("note", "STRING")],
        schema_update_options=[bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION],
    )
    job.result()

    assert [f.name for f in bigquery_client.get_table(table).schema][-1] == "note"
    got = list(bigquery_client.query_and_wait(f"SELECT note FROM `{table}` WHERE _batch = 7"))
    assert [row["note"] for row in got] == ["new column"]


def test_delete_dml(bigquery_client: bigquery.Client, table: str, tmp_path: Path) -> None:
    path = _ndjson(tmp_path / "rows.json", ROWS)
    _load(bigquery_client, table, path, _job_id("smoke-load-del")).result()
    config = bigquery.QueryJobConfig(
        query_parameters=[
            bigquery.ScalarQueryParameter("run", "STRING", "run-1"),
            bigquery.ScalarQueryParameter("b", "INT64", 0),
        ]
    )
    job = bigquery_client.query(f"DELETE FROM `{table}` WHERE _run_id = @run AND _batch = @b", job_config=config)
    job.result()

    assert job.num_dml_affected_rows == 2
    assert _count(bigquery_client, table, "run-1", 0) == 0
    assert _count(bigquery_client, table, "run-1", 1) == 1


def test_env_var_points_a_plain_client_at_the_emulator(
    bigquery_emulator_env: object, bigquery_dataset: bigquery.Dataset
) -> None:
    client = bigquery.Client(credentials=AnonymousCredentials())  # project: GOOGLE_CLOUD_PROJECT
    assert bigquery_dataset.dataset_id in {d.dataset_id for d in client.list_datasets()}
