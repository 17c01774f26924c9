"""Write modes and table layout on the BigQuery emulator, through the real client: `merge` twice
with overlapping keys leaves one row per key with the latest values, `replace` leaves exactly the
new run's rows, each run verified; a table is created partitioned and clustered as asked (by the
options, or by the pipeline, with its descriptions), and a later run asking for another
partitioning is refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.cloud import bigquery

from bench.events import write as write_events
from bqhold.flows.generic import generic_flow
from bqhold.flows.web_events import PIPELINE as WEB_EVENTS
from bqhold.flows.web_events import web_events_flow
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.write_modes import staging_table
from tests.bigquery_checks import table_id, warehouse_url
from tests.datasets import order, write_orders


def rows(client: bigquery.Client, dataset: bigquery.Dataset, table: str) -> dict[int, float]:
    sql = f"SELECT order_id, total FROM `{table_id(dataset, table)}`"
    return {row["order_id"]: row["total"] for row in client.query(sql).result()}


@pytest.fixture
def deliver(tmp_path: Path, bigquery_emulator_env, bigquery_dataset):
    def run(source: Path, **options):
        return generic_flow(
            input=str(source),
            key="order_id",
            table="orders",
            warehouse=warehouse_url(bigquery_dataset),
            hold_dir=str(tmp_path / "hold"),
            **options,
        )

    return run


def test_merge_twice_with_overlapping_keys_leaves_one_row_per_key_with_the_latest_values(
    prefect_api, tmp_path: Path, deliver, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    first = deliver(write_orders(tmp_path / "monday.jsonl", range(0, 60)), write_mode="merge")
    second = deliver(write_orders(tmp_path / "tuesday.jsonl", range(40, 100), total=1000.0), write_mode="merge")

    assert (first["status"], second["status"]) == ("delivered", "delivered"), second["message"]
    assert (first["rows_loaded"], second["rows_loaded"]) == (60, 60)
    held = rows(bigquery_client, bigquery_dataset, "orders")
    assert sorted(held) == list(range(100))  # once each: 40..59 were updated, not added again
    assert all(held[n] == 1000.0 + n for n in range(40, 100))
    assert all(held[n] == order(n)["total"] for n in range(40))
    tables = {t.table_id for t in bigquery_client.list_tables(bigquery_dataset)}
    assert tables == {"orders"}  # the runs' staging tables were dropped once delivered
    again = deliver(tmp_path / "monday.jsonl", write_mode="merge")  # nothing new: its rows partly superseded
    assert again["status"] == "already_delivered" and again["verified"]


def test_replace_leaves_exactly_the_new_runs_rows(
    prefect_api, tmp_path: Path, deliver, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    first = deliver(write_orders(tmp_path / "full.jsonl", range(0, 80)), write_mode="replace")
    second = deliver(write_orders(tmp_path / "full.jsonl", range(500, 530)), write_mode="replace")

    assert first["verified"] and second["verified"], second["message"]
    assert sorted(rows(bigquery_client, bigquery_dataset, "orders")) == list(range(500, 530))
    runs = f"SELECT DISTINCT _run_id FROM `{table_id(bigquery_dataset, 'orders')}`"
    assert [row[0] for row in bigquery_client.query(runs).result()] == [second["run_id"]]
    assert staging_table("orders", second["run_id"]) not in {
        t.table_id for t in bigquery_client.list_tables(bigquery_dataset)
    }


def test_a_table_is_created_partitioned_and_clustered_as_asked_and_another_partitioning_is_refused(
    prefect_api, tmp_path: Path, deliver, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    source = write_orders(tmp_path / "orders.jsonl", range(0, 30))

    summary = deliver(source, partition_by="placed_at:MONTH", cluster_by="paid,order_id")

    assert summary["verified"], summary["message"]
    table = bigquery_client.get_table(table_id(bigquery_dataset, "orders"))
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("MONTH", "placed_at")
    assert table.clustering_fields == ["paid", "order_id"]
    assert table.description == "Generic records: objects as RECORD columns, arrays as REPEATED ones, ISO dates typed."

    with pytest.raises(ConfigError) as refused:
        deliver(write_orders(tmp_path / "more.jsonl", range(30, 40)), partition_by="placed_at:DAY")

    assert refused.value.exit_code == 2 and str(refused.value).startswith(
        f"table {table_id(bigquery_dataset, 'orders')} is partitioned by placed_at:MONTH, --partition-by asks "
        "placed_at:DAY; BigQuery cannot change a table's partitioning"
    )


def test_a_pipeline_lays_out_its_table_partitioned_clustered_and_described(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    events = write_events(tmp_path / "events.jsonl", rows=200)

    summary = web_events_flow(
        input=str(events), table="web_events", warehouse=warehouse_url(bigquery_dataset), hold_dir=str(tmp_path / "h")
    )

    assert summary["verified"], summary["message"]
    table = bigquery_client.get_table(table_id(bigquery_dataset, "web_events"))
    assert (table.time_partitioning.type_, table.time_partitioning.field) == ("DAY", "event_ts")
    assert table.clustering_fields == ["event_type", "country"]
    described = {field.name: field.description for field in table.schema if field.description}
    assert described == WEB_EVENTS.column_descriptions and table.description == WEB_EVENTS.description
