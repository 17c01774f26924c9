"""gs:// loads end to end: google-cloud-storage uploads to gcp-storage-emulator, local-bigquery reads them."""

from __future__ import annotations

import json
import uuid

import pytest
from google.api_core.exceptions import BadRequest
from google.cloud import bigquery, storage

SCHEMA = [bigquery.SchemaField("name", "STRING"), bigquery.SchemaField("qty", "INT64")]


def _upload(bucket: storage.Bucket, name: str, rows: list[dict[str, object]]) -> str:
    body = "".join(json.dumps(row) + "\n" for row in rows)
    bucket.blob(name).upload_from_string(body, content_type="application/x-ndjson")
    return f"gs://{bucket.name}/{name}"


def _load(client: bigquery.Client, source: str | list[str], dataset: bigquery.Dataset) -> tuple[bigquery.LoadJob, str]:
    table = f"{dataset.project}.{dataset.dataset_id}.rows"
    job_config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=SCHEMA)
    job = client.load_table_from_uri(source, table, job_id=f"gcs-load-{uuid.uuid4().hex[:8]}", job_config=job_config)
    return job, table


def _rows(client: bigquery.Client, table: str) -> list[tuple[object, ...]]:
    return sorted((row["name"], row["qty"]) for row in client.list_rows(table))


def test_load_one_uri(
    gcs_bucket: storage.Bucket, bigquery_client: bigquery.Client, bigquery_dataset: bigquery.Dataset
) -> None:
    uri = _upload(gcs_bucket, "in/a.jsonl", [{"name": "alpha", "qty": 1}, {"name": "beta", "qty": 2}])

    job, table = _load(bigquery_client, uri, bigquery_dataset)
    job.result()

    assert (job.state, job.output_rows, job.error_result) == ("DONE", 2, None)
    assert _rows(bigquery_client, table) == [("alpha", 1), ("beta", 2)]


def test_load_list_of_uris(
    gcs_bucket: storage.Bucket, bigquery_client: bigquery.Client, bigquery_dataset: bigquery.Dataset
) -> None:
    uris = [
        _upload(gcs_bucket, "in/a.jsonl", [{"name": "alpha", "qty": 1}, {"name": "beta", "qty": 2}]),
        _upload(gcs_bucket, "in/b.jsonl", [{"name": "gamma", "qty": 3}]),
    ]

    job, table = _load(bigquery_client, uris, bigquery_dataset)
    job.result()

    assert job.output_rows == 3
    assert _rows(bigquery_client, table) == [("alpha", 1), ("beta", 2), ("gamma", 3)]


def test_missing_object_fails_the_load(
    gcs_bucket: storage.Bucket, bigquery_client: bigquery.Client, bigquery_dataset: bigquery.Dataset
) -> None:
    job, _ = _load(bigquery_client, f"gs://{gcs_bucket.name}/in/missing.jsonl", bigquery_dataset)
    with pytest.raises(BadRequest):
        job.result()
