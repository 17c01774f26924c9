"""Column names and column types in BigQuery (the emulator): Unicode names load as they are, an
INT64 column widens to FLOAT64, and a column BigQuery cannot turn into STRING is refused in one
line that says what to do."""

from __future__ import annotations

import json
from pathlib import Path

from google.cloud import bigquery

from bqhold.flows.generic import generic_flow
from bqhold.tasks.core.errors import ExitCode, exit_code_for
from tests.bigquery_checks import table_id, warehouse_url


def _jsonl(path: Path, records: list[dict]) -> str:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return str(path)


def test_unicode_names_load_an_int_column_widens_and_text_is_refused_in_one_line(
    prefect_api, tmp_path: Path, bigquery_emulator_env, bigquery_client: bigquery.Client, bigquery_dataset
) -> None:
    common = {
        "warehouse": warehouse_url(bigquery_dataset),
        "hold_dir": str(tmp_path / "hold"),
        "table": "measures",
    }
    first = _jsonl(tmp_path / "day1.jsonl", [{"id": 1, "v": 1, "café": "a", "名前": "x"}])
    assert generic_flow(input=first, **common)["verified"]

    second = _jsonl(tmp_path / "day2.jsonl", [{"id": 2, "v": 10.5, "café": "b", "名前": "y"}])
    refused = generic_flow(input=second, schema_update="refuse", return_state=True, **common)
    assert "--schema-update add" in str(refused.result(raise_on_failure=False))
    assert generic_flow(input=second, **common)["verified"], "the same run, resumed, widens the column"
    table = bigquery_client.get_table(table_id(bigquery_dataset, "measures"))
    types = {field.name: field.field_type for field in table.schema}
    assert types["v"] in ("FLOAT", "FLOAT64") and {"café", "名前"} <= types.keys(), types
    rows = bigquery_client.query(f"SELECT id, v, `café` FROM `{table_id(bigquery_dataset, 'measures')}` ORDER BY id")
    assert [tuple(row.values()) for row in rows.result()] == [(1, 1.0, "a"), (2, 10.5, "b")]

    third = _jsonl(tmp_path / "day3.jsonl", [{"id": 3, "v": 3}])
    refused = generic_flow(input=third, string_columns="id", return_state=True, **common)
    error = refused.result(raise_on_failure=False)
    assert exit_code_for(error) == ExitCode.UNUSABLE_INPUT
    message = str(error)
    assert "\n" not in message and "column id" in message and "INT64" in message and "--table" in message, message
    again = generic_flow(input=third, **common)
    assert again["verified"] and again["rows_loaded"] == 1, "the refusal changed nothing in HOLD₂"
