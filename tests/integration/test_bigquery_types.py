"""BigQuery-native tables on the emulator, through the real client: nested JSONL lands with the
TIMESTAMP, DATE, RECORD and REPEATED fields a BigQuery user would declare by hand (the schema is
written out below, as the API returns it), and the values can be queried as such."""

from __future__ import annotations

from pathlib import Path

from google.cloud import bigquery

from bqhold.flows.generic import generic_flow
from tests.bigquery_checks import table_id, warehouse_url
from tests.datasets import write_orders

# API type names, standard SQL or legacy (the API answers with either), as one spelling.
_SAME = {"INT64": "INTEGER", "FLOAT64": "FLOAT", "BOOL": "BOOLEAN", "STRUCT": "RECORD"}


def shape(fields) -> list[tuple]:
    """(name, type, mode, sub-fields) of a schema, nested."""
    return [(f.name, _SAME.get(f.field_type, f.field_type), f.mode or "NULLABLE", shape(f.fields)) for f in fields]


# What a BigQuery user would declare for these orders by hand.
EXPECTED = [
    ("order_id", "INTEGER", "NULLABLE", []),
    ("placed_at", "TIMESTAMP", "NULLABLE", []),
    ("ship_by", "DATE", "NULLABLE", []),
    (
        "customer",
        "RECORD",
        "NULLABLE",
        [
            ("id", "INTEGER", "NULLABLE", []),
            ("name", "STRING", "NULLABLE", []),
            ("address", "RECORD", "NULLABLE", [("city", "STRING", "NULLABLE", []), ("zip", "STRING", "NULLABLE", [])]),
        ],
    ),
    ("tags", "STRING", "REPEATED", []),
    (
        "lines",
        "RECORD",
        "REPEATED",
        [("sku", "STRING", "NULLABLE", []), ("qty", "INTEGER", "NULLABLE", []), ("price", "FLOAT", "NULLABLE", [])],
    ),
    ("total", "FLOAT", "NULLABLE", []),
    ("paid", "BOOLEAN", "NULLABLE", []),
]
OWN = ["_run_id", "_batch", "_loaded_at", "_row_hash"]


def test_nested_orders_land_with_timestamps_dates_records_and_repeated_fields(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    orders = write_orders(tmp_path / "orders.jsonl", range(600))

    summary = generic_flow(
        input=str(orders),
        key="order_id",
        table="Orders-2026",  # a name BigQuery takes as it is
        batch_size=250,
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
    )

    assert summary["verified"] and summary["rows_loaded"] == 600, summary["message"]
    table = bigquery_client.get_table(table_id(bigquery_dataset, "Orders-2026"))
    content = [field for field in table.schema if field.name not in OWN]
    assert shape(content) == EXPECTED
    sql = f"""
        SELECT order_id, placed_at, ship_by, customer.address.city AS city, ARRAY_LENGTH(tags) AS tags,
               (SELECT SUM(line.qty) FROM UNNEST(lines) AS line) AS items
        FROM `{table_id(bigquery_dataset, "Orders-2026")}` WHERE order_id IN (4, 5) ORDER BY order_id"""
    rows = [dict(row) for row in bigquery_client.query(sql).result()]
    assert [(r["order_id"], r["placed_at"].isoformat(), r["ship_by"].isoformat(), r["city"]) for r in rows] == [
        (4, "2026-11-05T04:15:00+00:00", "2026-12-05", "Oslo"),
        (5, "2026-11-06T05:15:00+00:00", "2026-12-06", "Oslo"),
    ]
    assert [(r["tags"], r["items"]) for r in rows] == [(1, 1 + 2), (2, 1 + 2 + 3)]


def test_objects_as_json_with_nesting_json(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    orders = write_orders(tmp_path / "orders.jsonl", range(20))

    summary = generic_flow(
        input=str(orders),
        nesting="json",
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
    )

    assert summary["verified"], summary["message"]
    table = table_id(bigquery_dataset, "orders")
    types = {f.name: (f.field_type, f.mode) for f in bigquery_client.get_table(table).schema}
    assert types["customer"] == ("JSON", "NULLABLE") and types["lines"] == ("JSON", "NULLABLE")
    assert types["tags"] == ("STRING", "REPEATED")
    sql = f"SELECT JSON_VALUE(customer, '$.address.city') AS city FROM `{table}` WHERE order_id = 3"
    assert [row["city"] for row in bigquery_client.query(sql).result()] == ["Oslo"]
