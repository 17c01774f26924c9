"""Bad, huge and deep records through the real command: each is delivered, quarantined with its
original bytes, or refused in one line, in bounded time and memory (issue 9 items 7, 19, 20)."""

from __future__ import annotations

import json

import duckdb

from tests.conftest import CliResult, Workspace


def warehouse_rows(workspace: Workspace, table: str, columns: str = "count(*)", where: str = "true") -> tuple:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return con.execute(f"SELECT {columns} FROM {table} WHERE {where}").fetchone()


def quarantined(workspace: Workspace) -> list[dict]:
    """Every quarantine entry of the workspace's runs, in batch order."""
    files = sorted((workspace.hold / "runs").glob("*/quarantine/batch-*.jsonl"))
    return [json.loads(line) for path in files for line in path.read_text().splitlines()]


def last_error_line(result: CliResult) -> str:
    assert "Traceback" not in result.output, result.output
    return result.stderr.strip().splitlines()[-1]


def test_a_json_file_holding_one_array_on_one_line_is_read_as_its_records(workspace: Workspace) -> None:
    elements = [json.dumps({"event_id": f"e{i}", "n": i}) for i in range(5000)]
    elements.insert(100, "42")
    elements.insert(4000, '"not an object"')
    data = workspace.root / "export.json"
    data.write_text("[" + ",".join(elements) + "]")

    result = workspace.cli("--input", str(data), "--batch-size", "2000")

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (5000, 1 + 1)
    assert warehouse_rows(workspace, "export", "count(*), count(DISTINCT event_id)") == (5000, 5000)
    odd = [(index + 1, element) for index, element in enumerate(elements) if not element.startswith("{")]
    assert [(entry["line"], entry["record"]) for entry in quarantined(workspace)] == odd, "element index and bytes"


def test_a_file_whose_every_record_is_bad_is_refused_and_blocks_nothing_once_fixed(workspace: Workspace) -> None:
    data = workspace.root / "orders.jsonl"
    data.write_text("id,name\n1,a\n2,b\n3,c\n4,d\n")  # a CSV named .jsonl: 5 lines, none of them JSON

    refused = workspace.cli("--input", str(data))

    assert refused.code == 2, refused.output
    line = last_error_line(refused)
    assert str(data) in line and "line 1" in line and "malformed JSON" in line

    data.write_text("".join(json.dumps({"id": i, "name": name}) + "\n" for i, name in enumerate("abcd", 1)))
    fixed = workspace.cli("--input", str(data))
    assert fixed.code == 0, fixed.output
    assert warehouse_rows(workspace, "orders") == (4,)


def test_records_nested_500_deep_are_quarantined_unparsed_in_about_a_second(workspace: Workspace) -> None:
    deep = '{"event_id": "deep", "x": ' + '{"a": ' * 499 + "1" + "}" * 499 + "}"  # 500 levels
    good = [json.dumps({"event_id": f"e{i}", "user": {"id": i}}) for i in range(400)]
    data = workspace.root / "deep.jsonl"
    data.write_text("\n".join(good[:200] + [deep] * 20 + good[200:]) + "\n")

    result = workspace.cli("--input", str(data), timeout=120)

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (400, 20)
    assert result.summary["stage_s"] < 3 and result.summary["peak_rss_mb"] < 600
    entries = quarantined(workspace)
    assert {entry["line"] for entry in entries} == set(range(201, 221))
    assert all("nested 500 levels deep" in entry["reason"] and entry["record"] == deep for entry in entries)


def test_a_20_mb_record_is_delivered_by_default(workspace: Workspace) -> None:
    blob = "y" * (20 * 2**20)
    data = workspace.root / "big.jsonl"
    records = [{"event_id": f"e{i}", "blob": blob if i == 1 else "x"} for i in range(3)]
    data.write_text("".join(json.dumps(record) + "\n" for record in records))

    result = workspace.cli("--input", str(data))

    assert result.code == 0, result.output
    assert (result.summary["rows_written"], result.summary["rows_quarantined"]) == (3, 0)
    assert warehouse_rows(workspace, "big", "max(length(blob))") == (len(blob),)
