"""Delivery to BigQuery through the real google-cloud-bigquery client and a real emulator."""

from __future__ import annotations

import json
from pathlib import Path

from google.cloud import bigquery

from bench.events import write as write_events
from bqhold.flows.cleanup import cleanup_flow
from bqhold.flows.generic import generic_flow
from bqhold.flows.redeliver import redeliver_flow
from bqhold.flows.web_events import web_events_flow
from bqhold.tasks.core.errors import ConfigError, VerificationFailed, WarehouseRejected
from tests.bigquery_checks import count, job_ids_of, table_id
from tests.conftest import numbered_records


def test_delivers_with_a_schema_derived_from_the_pipeline_not_autodetected(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=2000)
    summary = web_events_flow(input=str(data), warehouse=target, hold_dir=str(tmp_path / "hold"), batch_size=500)

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert count(bigquery_client, bigquery_dataset, "events") == summary["rows_written"]
    table = bigquery_client.get_table(f"{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.events")
    types = {field.name: field.field_type for field in table.schema}
    assert types["event_ts"] == "TIMESTAMP" and types["_loaded_at"] == "TIMESTAMP"
    assert types["user_id"] in ("INTEGER", "INT64") and types["is_mobile"] in ("BOOLEAN", "BOOL")
    assert len(job_ids_of(bigquery_client, summary["run_id"])) == 1, "four batches, one load job"


def test_new_column_is_added_or_refused_by_name(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    first = tmp_path / "first.jsonl"
    first.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(10)))
    second = tmp_path / "second.jsonl"
    second.write_text("".join(json.dumps({"id": i, "colour": "red"}) + "\n" for i in range(10, 20)))
    common = {"warehouse": target, "hold_dir": str(tmp_path / "hold"), "table": "things"}
    assert generic_flow(input=str(first), **common)["verified"]

    refused = generic_flow(input=str(second), schema_update="refuse", return_state=True, **common)
    assert refused.is_failed()
    error = refused.result(raise_on_failure=False)
    assert isinstance(error, ConfigError) and "colour" in str(error)

    added = generic_flow(input=str(second), **common)
    assert added["verified"] and count(bigquery_client, bigquery_dataset, "things", "colour = 'red'") == 10


def test_redeliver_after_the_table_was_truncated_loads_only_from_hold2(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=900)
    hold = str(tmp_path / "hold")
    first = generic_flow(input=str(data), warehouse=target, hold_dir=hold, run_id="r1", batch_size=300)
    bigquery_client.query(
        f"DELETE FROM `{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.events` WHERE TRUE"
    ).result()
    data.unlink()  # the source is gone: redelivery reads HOLD₂ only

    again = redeliver_flow(run_id="r1", hold_dir=hold)
    assert again["verified"] and again["batches_redelivered"] == 3
    assert count(bigquery_client, bigquery_dataset, "events") == first["rows_written"]
    assert redeliver_flow(run_id="r1", hold_dir=hold)["batches_redelivered"] == 0


def test_cleanup_is_a_dry_run_by_default_and_never_touches_unverified_runs(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    hold = tmp_path / "hold"
    good = write_events(tmp_path / "good.jsonl", rows=100)
    bad = write_events(tmp_path / "bad.jsonl", rows=100, seed=9)
    generic_flow(input=str(good), warehouse=target, hold_dir=str(hold), run_id="good", table="good")
    generic_flow(input=str(bad), warehouse=target, hold_dir=str(hold), run_id="tampered", table="tampered")
    bigquery_client.query(
        f"DELETE FROM `{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.tampered` WHERE TRUE"
    ).result()

    listed = cleanup_flow(hold_dir=str(hold))
    assert listed["dry_run"] and listed["would_clean"] == ["good"]
    assert any((hold / "runs" / "good" / "segments").iterdir())

    applied = cleanup_flow(hold_dir=str(hold), apply=True)
    assert applied["cleaned"] == ["good"]
    assert not (hold / "runs" / "good" / "segments").exists()
    assert any((hold / "runs" / "tampered" / "segments").iterdir()), "an unverified run keeps its HOLD₂"
    assert count(bigquery_client, bigquery_dataset, "good") == 100


def test_cleanup_through_a_target_block_checks_each_run_in_its_own_table(
    prefect_api, tmp_path: Path, target: str, bigquery_dataset
) -> None:
    from bqhold.blocks import BigQueryTarget

    hold = tmp_path / "hold"
    for table in ("first", "second"):
        data = write_events(tmp_path / f"{table}.jsonl", rows=50)
        generic_flow(input=str(data), warehouse=target, hold_dir=str(hold), run_id=table, table=table)
    BigQueryTarget(project=bigquery_dataset.project, dataset=bigquery_dataset.dataset_id, table="first").save(
        "bqhold-test-cleanup", overwrite=True
    )

    listed = cleanup_flow(hold_dir=str(hold), bigquery_target="bqhold-test-cleanup")

    assert sorted(listed["would_clean"]) == ["first", "second"], listed
    assert listed["kept"] == []


def test_a_missing_credentials_block_is_named_in_one_line(prefect_api, tmp_path: Path, target: str) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=10)
    state = generic_flow(
        input=str(data),
        warehouse=target,
        hold_dir=str(tmp_path / "hold"),
        gcp_credentials_block="no-such-credentials",
        return_state=True,
    )

    assert state.is_failed()
    assert state.message.startswith("no GCP Credentials block named 'no-such-credentials'"), state.message
    assert "\n" not in state.message.strip()


def test_permanent_errors_fail_at_once_with_what_to_fix(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=10)
    state = generic_flow(
        input=str(data),
        warehouse=f"bigquery://{bigquery_client.project}/no_such_dataset",
        hold_dir=str(tmp_path / "hold"),
        return_state=True,
    )
    error = state.result(raise_on_failure=False)
    assert isinstance(error, WarehouseRejected)
    assert "notFound" in str(error) and "dataset" in str(error)


def ids_of(client: bigquery.Client, table: str) -> list[str]:
    return sorted(row["id"] for row in client.query(f"SELECT id FROM `{table}`").result())


def test_a_run_id_reused_from_another_hold_dir_is_refused_not_verified_with_the_other_runs_rows(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    common = {"warehouse": target, "table": "things", "run_id": "daily"}
    first = numbered_records(tmp_path / "first.jsonl", "a", 20)
    assert generic_flow(input=str(first), hold_dir=str(tmp_path / "hold-a"), **common)["verified"]

    second = numbered_records(tmp_path / "second.jsonl", "b", 20)
    refused = generic_flow(input=str(second), hold_dir=str(tmp_path / "hold-b"), return_state=True, **common)

    assert refused.is_failed()
    error = refused.result(raise_on_failure=False)
    assert isinstance(error, ConfigError) and "choose another --run-id" in str(error), error
    assert ids_of(bigquery_client, table_id(bigquery_dataset, "things")) == sorted(f"a{n}" for n in range(20))


def test_content_tampering_and_foreign_rows_are_not_verified_and_redeliver_repairs_both(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    data = numbered_records(tmp_path / "things.jsonl", "t", 30)
    hold = str(tmp_path / "hold")
    assert generic_flow(input=str(data), warehouse=target, hold_dir=hold, table="things", run_id="content")["verified"]
    table = table_id(bigquery_dataset, "things")
    for statement in (
        f"DELETE FROM `{table}` WHERE n < 10",
        f"INSERT INTO `{table}` SELECT * FROM `{table}` WHERE n >= 10 AND n < 20",
        f"INSERT INTO `{table}` (id, n, _run_id, _batch) VALUES ('stray', 1, 'content', NULL)",
        f"INSERT INTO `{table}` (id, n, _run_id, _batch) VALUES ('other', 2, 'content', 7)",
    ):
        bigquery_client.query(statement).result()

    assert cleanup_flow(hold_dir=hold)["would_clean"] == [], "a run that does not verify is never cleaned"
    checked = generic_flow(input=str(data), warehouse=target, hold_dir=hold, table="things", return_state=True)

    error = checked.result(raise_on_failure=False)
    assert isinstance(error, VerificationFailed), error
    for part in ("batch 0: content differs", "1 row without a batch", "batch 7, not in HOLD₂'s ledger: 1 row"):
        assert part in str(error), str(error)
    repaired = redeliver_flow(run_id="content", hold_dir=hold)
    assert repaired["verified"] and repaired["batches_redelivered"] == 1
    assert ids_of(bigquery_client, table) == sorted(f"t{n}" for n in range(30))


def test_redeliver_recreates_a_dropped_table_and_loads_into_another_dataset_and_table(
    prefect_api, tmp_path: Path, target: str, bigquery_client, bigquery_dataset
) -> None:
    data = numbered_records(tmp_path / "things.jsonl", "t", 30)
    hold = str(tmp_path / "hold")
    assert generic_flow(input=str(data), warehouse=target, hold_dir=hold, table="things", run_id="dropped")["verified"]
    bigquery_client.delete_table(table_id(bigquery_dataset, "things"))

    again = redeliver_flow(run_id="dropped", hold_dir=hold)

    assert again["verified"] and again["batches_redelivered"] == 1
    assert ids_of(bigquery_client, table_id(bigquery_dataset, "things")) == sorted(f"t{n}" for n in range(30))
    other = bigquery_client.create_dataset(f"{bigquery_dataset.dataset_id}_copy")
    try:
        elsewhere = redeliver_flow(
            run_id="dropped", hold_dir=hold, warehouse=f"bigquery://{other.project}/{other.dataset_id}", table="copy"
        )
        assert elsewhere["verified"] and elsewhere["batches_redelivered"] == 1
        copy = bigquery_client.get_table(f"{other.project}.{other.dataset_id}.copy")
        assert {"id", "n"} <= {field.name for field in copy.schema}, "the run's columns, not only bqhold's"
        assert ids_of(bigquery_client, f"{other.project}.{other.dataset_id}.copy") == sorted(f"t{n}" for n in range(30))
    finally:
        bigquery_client.delete_dataset(other, delete_contents=True, not_found_ok=True)
