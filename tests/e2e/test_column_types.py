"""A value reaches the warehouse as it was, or goes to quarantine with its line: through the CLI.

Leading zeros stay text, a value of another kind in a batch is not coerced, field names keep
their letters without two fields silently sharing a column, and a column widens (INT64 ->
FLOAT64 by itself, anything -> STRING when asked) instead of blocking the table for ever.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.conftest import Workspace


def column_types(warehouse: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return dict(
            con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        )


def rows_of(warehouse: Path, table: str, columns: str, order: str = "1") -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} ORDER BY {order}").fetchall()


def quarantined(hold: Path) -> list[dict]:
    return sorted(
        (json.loads(line) for f in (hold / "runs").glob("*/quarantine/*.jsonl") for line in f.read_text().splitlines()),
        key=lambda entry: (entry["source"], entry["line"]),
    )


def jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return path


def test_csv_text_that_is_not_a_plain_number_stays_text(workspace: Workspace) -> None:
    data = workspace.root / "people.csv"
    data.write_text(
        "id,zip,phone,amount,big,precise,code\n"
        "1,02100,000555,1.50,9223372036854775808,3.141592653589793238,10115\n"
        "2,10115,0301234,2,12,1,20095\n"
        "3,0,+4930123,0.5,13,2.5,02100\n"
        "4,0,+4930124,0.25,14,2.50,30000\n"
    )
    result = workspace.cli("--input", str(data), "--batch-size", "2", "--max-error-rate", "1")
    assert result.code == 0, result.output

    types = column_types(workspace.warehouse, "people")
    assert (types["id"], types["amount"], types["code"]) == ("BIGINT", "DOUBLE", "BIGINT")
    assert {types[c] for c in ("zip", "phone", "big", "precise")} == {"VARCHAR"}
    assert rows_of(workspace.warehouse, "people", "zip, phone, amount, big, precise", "id") == [
        ("02100", "000555", 1.5, "9223372036854775808", "3.141592653589793238"),
        ("10115", "0301234", 2.0, "12", "1"),
        ("0", "+4930124", 0.25, "14", "2.50"),  # a later batch's text as written, in a text column
    ]
    # `code` was INT64 from the first batch: `02100` does not fit it, and is not turned into 2100.
    [entry] = quarantined(workspace.hold)
    assert entry["line"] == 4 and "field 'code': expected INT64, got 02100" in entry["reason"]
    assert "--string-columns code" in entry["reason"]


def test_a_value_of_another_kind_in_a_batch_is_quarantined_not_coerced(workspace: Workspace) -> None:
    records = [{"id": i, "a": i, "o": {"p": i}} for i in range(40)]
    records[9]["a"] = True  # line 10
    records[19]["o"] = "x"  # line 20
    data = jsonl(workspace.root / "mixed.jsonl", records)

    result = workspace.cli("--input", str(data), "--max-error-rate", "0.5")
    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (38, 2)

    types = column_types(workspace.warehouse, "mixed")
    assert (types["a"], types["o"]) == ("BIGINT", "STRUCT(p BIGINT)"), types
    assert rows_of(workspace.warehouse, "mixed", "count(*), count(o.p), count(*) FILTER (a = id)") == [(38, 38, 38)]
    assert [(e["line"], e["reason"]) for e in quarantined(workspace.hold)] == [
        (10, "field 'a': expected INT64, got true (--string-columns a would keep it as text)"),
        (20, "field 'o': expected an object, got a string"),
    ]


def test_field_names_keep_their_letters_and_a_record_with_two_for_one_column_is_quarantined(
    workspace: Workspace,
) -> None:
    data = jsonl(
        workspace.root / "names.jsonl",
        [
            {"id": 1, "café": "a", "名前": "x", "😀": "smile", "Name": "n1"},
            {"id": 2, "café": "b", "名前": "y", "😀": "grin", "name": "n2"},
            {"id": 3, "Id": 3},
        ],
    )
    result = workspace.cli("--input", str(data))
    assert result.code == 0, result.output

    assert {"café", "名前", "u1f600", "name"} <= column_types(workspace.warehouse, "names").keys()
    assert rows_of(workspace.warehouse, "names", 'id, "café", "名前", u1f600, name', "id") == [
        (1, "a", "x", "smile", "n1"),
        (2, "b", "y", "grin", "n2"),
    ]
    [entry] = quarantined(workspace.hold)
    assert entry["line"] == 3 and entry["reason"].startswith("fields 'id' and 'Id' both become column 'id'")


def test_a_column_widens_to_float_by_itself_and_to_text_when_asked(workspace: Workspace) -> None:
    common = ("--table", "measures", "--key", "id")
    first = jsonl(workspace.root / "day1.jsonl", [{"id": 1, "v": 1}, {"id": 2, "v": 2}])
    assert workspace.cli("--input", str(first), *common).code == 0
    assert column_types(workspace.warehouse, "measures")["v"] == "BIGINT"

    second = jsonl(workspace.root / "day2.jsonl", [{"id": 3, "v": 10.5}, {"id": 4, "v": "n/a"}])
    widened = workspace.cli("--input", str(second), *common, "--max-error-rate", "1")
    assert widened.code == 0, widened.output
    assert column_types(workspace.warehouse, "measures")["v"] == "DOUBLE"
    assert rows_of(workspace.warehouse, "measures", "id, v") == [(1, 1.0), (2, 2.0), (3, 10.5)]
    assert "column 'v'" in widened.output and "FLOAT64" in widened.output, "the widening is logged"
    [entry] = quarantined(workspace.hold)
    assert entry["line"] == 2 and "--string-columns v" in entry["reason"], entry

    third = jsonl(workspace.root / "day3.jsonl", [{"id": 4, "v": "n/a"}])
    texts = workspace.cli("--input", str(third), *common, "--string-columns", "v")
    assert texts.code == 0, texts.output
    assert column_types(workspace.warehouse, "measures")["v"] == "VARCHAR"
    assert rows_of(workspace.warehouse, "measures", "id, v") == [(1, "1.0"), (2, "2.0"), (3, "10.5"), (4, "n/a")]
