"""Loading through a staging bucket: segments uploaded to a real Cloud Storage emulator, one load job
per group reading them by URI from the real BigQuery emulator, objects removed once loaded."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.cloud import storage

from bqhold.flows.generic import generic_flow
from bqhold.flows.redeliver import redeliver_flow
from bqhold.tasks.core.retry import RequestRetries
from bqhold.tasks.warehouses.gcs_staging import GcsStaging
from tests.bigquery_checks import counts, load_jobs_of, warehouse_url
from tests.faultproxy import ALL_KINDS, FaultProxy


@pytest.fixture
def target(target: str, gcs_emulator_env) -> str:
    """The integration tests' BigQuery target, with Cloud Storage clients pointed at the emulator too."""
    return target


def write_records(path: Path, rows: int) -> Path:
    path.write_text("".join(json.dumps({"id": i, "name": f"n{i}", "score": i / 2}) + "\n" for i in range(rows)))
    return path


def objects(bucket: storage.Bucket) -> list[str]:
    return sorted(blob.name for blob in bucket.client.list_blobs(bucket.name))


def test_delivers_through_the_bucket_with_one_job_reading_every_segment(
    prefect_api, tmp_path: Path, target: str, gcs_bucket: storage.Bucket, bigquery_client, bigquery_dataset
) -> None:
    data = write_records(tmp_path / "things.jsonl", 4000)
    summary = generic_flow(
        input=str(data),
        key="id",
        warehouse=target,
        hold_dir=str(tmp_path / "hold"),
        batch_size=1000,
        staging_bucket=f"gs://{gcs_bucket.name}/loads",
        segment_format="jsonl",  # each segment its own object (a Parquet group is one file)
    )

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "things", key="id") == (4000, 4000)
    [job] = load_jobs_of(bigquery_client, summary["run_id"])
    prefix = f"gs://{gcs_bucket.name}/loads/bqhold/{job.labels['bqhold_hold']}/{summary['run_id']}/"
    assert job.source_uris == [f"{prefix}batch-{n:06d}.jsonl" for n in range(4)], "one job, four staged segments"
    assert objects(gcs_bucket) == [], "staged objects are removed once the load succeeded"


def test_staging_uploads_only_what_the_bucket_lacks(
    tmp_path: Path, gcs_emulator_env, gcs_bucket: storage.Bucket
) -> None:
    files = [write_records(tmp_path / f"batch-00000{n}.jsonl", 100 + n) for n in range(3)]
    staging = GcsStaging(gcs_bucket, "x/", retries=RequestRetries(max_retries=0))
    first = staging.stage("hold1", "run-1", files[:2])
    generations = {blob.name: blob.generation for blob in gcs_bucket.client.list_blobs(gcs_bucket.name)}

    again = staging.stage("hold1", "run-1", files)

    assert again[:2] == first and again[2] == f"gs://{gcs_bucket.name}/x/bqhold/hold1/run-1/batch-000002.jsonl"
    after = {blob.name: blob.generation for blob in gcs_bucket.client.list_blobs(gcs_bucket.name)}
    assert {name: after[name] for name in generations} == generations, "present objects were not sent again"
    assert gcs_bucket.blob("x/bqhold/hold1/run-1/batch-000002.jsonl").download_as_bytes() == files[2].read_bytes()
    staging.remove("hold1", "run-1", files)
    staging.remove("hold1", "run-1", files)  # already gone: not an error
    assert objects(gcs_bucket) == []


def test_a_missing_bucket_fails_in_one_line_and_redelivery_loads_the_kept_run(
    prefect_api, tmp_path: Path, target: str, gcs_bucket: storage.Bucket, bigquery_client, bigquery_dataset
) -> None:
    data = write_records(tmp_path / "things.jsonl", 1500)
    hold = str(tmp_path / "hold")
    failed = generic_flow(
        input=str(data),
        key="id",
        warehouse=target,
        hold_dir=hold,
        batch_size=500,
        run_id="no-bucket",
        staging_bucket=f"gs://missing-{uuid.uuid4().hex[:8]}",
        return_state=True,
    )

    assert failed.is_failed()
    message = failed.message.strip()
    assert "\n" not in message and "Cloud Storage" in message and "bucket exists" in message, message
    assert counts(bigquery_client, bigquery_dataset, "things", key="id") == (0, 0)

    delivered = redeliver_flow(
        run_id="no-bucket", hold_dir=hold, warehouse=target, staging_bucket=f"gs://{gcs_bucket.name}"
    )

    assert delivered["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "things", key="id") == (1500, 1500)
    assert objects(gcs_bucket) == []


@pytest.fixture
def proxied(
    bigquery_emulator, gcs_emulator, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Both clients talk to their emulators through fault proxies (the load job itself reads the
    bucket directly, as BigQuery reads GCS inside Google's network)."""
    with (
        FaultProxy(bigquery_emulator.endpoint, delay_s=2.5, seed=11) as bigquery_proxy,
        FaultProxy(gcs_emulator.endpoint, delay_s=2.5, seed=12) as storage_proxy,
    ):
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_proxy.endpoint)
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", storage_proxy.endpoint)
        yield bigquery_proxy, storage_proxy


def inserts_a_job(method: str, path: str) -> bool:
    return method == "POST" and path.split("?")[0].endswith("/jobs")


def test_faulted_uploads_and_a_lost_job_answer_still_load_exactly_once(
    prefect_api, tmp_path: Path, proxied, gcs_bucket: storage.Bucket, bigquery_client, bigquery_dataset, retry_timing
) -> None:
    retry_timing(first_wait_s=0.01, request_timeout_s=1.5)
    bigquery_proxy, storage_proxy = proxied
    data = write_records(tmp_path / "things.jsonl", 60_000)
    storage_proxy.configure(fault_rate=0.3, kinds=ALL_KINDS)
    bigquery_proxy.drop_next_response(inserts_a_job)
    summary = generic_flow(
        input=str(data),
        key="id",
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
        batch_size=3000,
        run_id="faulted-bucket",
        staging_bucket=f"gs://{gcs_bucket.name}",
        max_retries=25,
        segment_format="jsonl",  # twenty objects to fault (a Parquet group is one small file)
    )
    storage_proxy.configure(fault_rate=0)

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "things", key="id") == (60_000, 60_000)
    assert bigquery_proxy.stats["drop_response"] == 1
    [job] = load_jobs_of(bigquery_client, "faulted-bucket")
    assert job.job_id == f"bqhold_faulted-bucket-b000000-000019_h{job.labels['bqhold_hold']}_d0_a0", (
        "the lost job answer was re-attached, not loaded twice"
    )
    faults = sum(count for kind, count in storage_proxy.stats.items() if kind in ALL_KINDS)
    assert faults >= 10, storage_proxy.stats
    assert objects(gcs_bucket) == []


def test_a_target_block_names_a_gcs_bucket_block_and_its_folder(
    prefect_api,
    tmp_path: Path,
    target: str,
    gcs_bucket: storage.Bucket,
    bigquery_client,
    bigquery_dataset,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from prefect_gcp import GcpCredentials
    from prefect_gcp.cloud_storage import GcsBucket

    from bqhold.blocks import BigQueryTarget

    # GcpCredentials resolves default credentials when built; these would fail at the first
    # request to Google, so the run passing also shows the emulator's anonymous client was used.
    unusable = tmp_path / "adc.json"
    unusable.write_text(
        json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(unusable))
    GcsBucket(
        bucket=gcs_bucket.name, bucket_folder="from-block", gcp_credentials=GcpCredentials(project="test-project")
    ).save("bqhold-test-stage", overwrite=True)
    BigQueryTarget(  # composed as in the UI's picker: a saved GcsBucket block
        project=bigquery_dataset.project,
        dataset=bigquery_dataset.dataset_id,
        table="things",
        gcs_bucket=GcsBucket.load("bqhold-test-stage"),
    ).save("bqhold-test-target", overwrite=True)
    data = write_records(tmp_path / "input.jsonl", 1200)

    summary = generic_flow(
        input=str(data), key="id", bigquery_target="bqhold-test-target", hold_dir=str(tmp_path / "hold")
    )

    assert summary["verified"] is True and summary["table"] == "things"
    assert counts(bigquery_client, bigquery_dataset, "things", key="id") == (1200, 1200)
    [job] = load_jobs_of(bigquery_client, summary["run_id"])
    hold = job.labels["bqhold_hold"]
    assert job.source_uris == [
        f"gs://{gcs_bucket.name}/from-block/bqhold/{hold}/{summary['run_id']}/load-{summary['run_id']}-b000000-000000.parquet"
    ]
