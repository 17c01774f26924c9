"""The BigQueryTarget block as a user saves it: names BigQuery would refuse are refused when the
block is made (before any run), and a saved block brings its write options and composed
prefect-gcp blocks to a run."""

from __future__ import annotations

import json

import pytest

from bqhold.blocks import BigQueryTarget
from bqhold.tasks.core.errors import ConfigError


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"project": "My Project", "dataset": "sales"}, "project id 'My Project' is not a Google Cloud project id"),
        ({"project": "my-project", "dataset": "sales-eu"}, "dataset name 'sales-eu' is not one BigQuery accepts"),
        ({"project": "my-project", "dataset": "sales", "table": "eu.orders"}, "table name 'eu.orders' is not one"),
        ({"project": "my-project", "dataset": "sales", "partition_by": "ts:WEEK"}, "--partition-by 'ts:WEEK'"),
        ({"project": "my-project", "dataset": "sales", "write_mode": "upsert"}, "write_mode"),
    ],
)
def test_a_block_with_a_name_or_option_bigquery_would_refuse_cannot_be_made(fields, message):
    with pytest.raises((ConfigError, ValueError), match=message):
        BigQueryTarget(**fields)


def test_a_saved_block_sets_the_runs_options_with_its_composed_blocks_by_name(prefect_api, tmp_path, monkeypatch):
    from prefect_gcp.cloud_storage import GcsBucket
    from prefect_gcp.credentials import GcpCredentials

    adc = tmp_path / "adc.json"  # GcpCredentials resolves default credentials when made; these never reach Google
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    GcpCredentials(project="my-project").save("bqhold-test-credentials", overwrite=True)
    GcsBucket(bucket="exports", bucket_folder="loads").save("bqhold-test-bucket", overwrite=True)
    BigQueryTarget(
        project="my-project",
        dataset="sales",
        table="Orders-2026",
        gcs_bucket=GcsBucket.load("bqhold-test-bucket"),
        gcp_credentials=GcpCredentials.load("bqhold-test-credentials"),
        write_mode="merge",
        partition_by="placed_at:MONTH",
        cluster_by="customer_id",
    ).save("bqhold-test-options", overwrite=True)

    values = BigQueryTarget.load("bqhold-test-options").option_values()

    assert values["warehouse"] == "bigquery://my-project/sales" and values["table"] == "Orders-2026"
    assert values["staging_bucket"] == "bqhold-test-bucket"
    assert values["gcp_credentials_block"] == "bqhold-test-credentials"
    assert (values["write_mode"], values["partition_by"], values["cluster_by"]) == (
        "merge",
        "placed_at:MONTH",
        "customer_id",
    )


def test_a_credentials_block_made_inline_is_named_as_the_thing_to_save(prefect_api, tmp_path, monkeypatch):
    from prefect_gcp.credentials import GcpCredentials

    adc = tmp_path / "adc.json"
    adc.write_text(
        json.dumps({"type": "authorized_user", "client_id": "x", "client_secret": "y", "refresh_token": "z"})
    )
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
    BigQueryTarget(project="my-project", dataset="sales", gcp_credentials=GcpCredentials(project="my-project")).save(
        "bqhold-test-inline", overwrite=True
    )

    with pytest.raises(
        ConfigError, match=r"gcp_credentials is not a saved block of its own: save it \(e.g. GcpCredentials"
    ):
        BigQueryTarget.load("bqhold-test-inline").option_values()
