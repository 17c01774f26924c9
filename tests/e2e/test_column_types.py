"""A value reaches the warehouse as it was, or goes to quarantine with its line: through the CLI.

Field names keep their letters without two fields silently sharing a column.
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
