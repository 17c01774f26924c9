"""What the DuckDB warehouse holds is checked, not trusted: rows another hold dir loaded under the
same run id are never taken (or deleted) as ours, verification compares each batch's content as
well as its count, and rows that belong to no batch of the run are named, then removed by
`redeliver` — through the real command, with tiny inputs."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb

from tests.conftest import Workspace, numbered_records


def ids_in(warehouse: Path, table: str = "things") -> list[str]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return sorted(row[0] for row in con.execute(f"SELECT id FROM {table}").fetchall())


def tamper(warehouse: Path, *statements: str) -> None:
    with duckdb.connect(str(warehouse)) as con:
        for statement in statements:
            con.execute(statement)


def one_line(text: str) -> str:
    """The command's one `bqhold:` line (and proof that there is no traceback)."""
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("bqhold: ")]
    assert len(lines) == 1, text
    return lines[0]


def test_a_run_id_reused_from_another_hold_dir_is_refused_and_deletes_nothing(workspace: Workspace) -> None:
    first = numbered_records(workspace.root / "first.jsonl", "a", 20)
    second = numbered_records(workspace.root / "second.jsonl", "b", 20)
    assert workspace.cli("--input", str(first), "--table", "things", "--run-id", "daily").code == 0

    refused = workspace.cli(
        *("--hold-dir", str(workspace.root / "other-hold"), "--input", str(second), "--table", "things"),
        *("--run-id", "daily"),
    )

    assert refused.code == 2, refused.output
    assert "choose another --run-id" in one_line(refused.stderr)
    assert ids_in(workspace.warehouse) == sorted(f"a{n}" for n in range(20)), "the first hold dir's rows are intact"


def test_tampered_content_and_foreign_rows_are_not_verified_and_redeliver_repairs_both(workspace: Workspace) -> None:
    data = numbered_records(workspace.root / "things.jsonl", "t", 30)
    args = ("--input", str(data), "--table", "things", "--run-id", "r")
    assert workspace.cli(*args).code == 0
    tamper(
        workspace.warehouse,
        # Ten rows deleted, ten others duplicated: the batch keeps its count of 30.
        "DELETE FROM things WHERE n < 10",
        "INSERT INTO things SELECT * FROM things WHERE n >= 10 AND n < 20",
        # Rows under the run's id that belong to none of its batches.
        "INSERT INTO things (id, n, _run_id, _batch) VALUES ('stray', 1, 'r', NULL), ('other', 2, 'r', 7)",
    )

    checked = workspace.cli(*args)
    assert checked.code == 3, checked.output
    assert checked.summary["verified"] is False
    line = one_line(checked.stderr)
    for part in ("1 row without a batch", "batch 0: content differs", "batch 7, not in HOLD₂'s ledger: 1 row"):
        assert part in line, line

    redelivered = workspace.subcommand("redeliver", "--run-id", "r")
    assert redelivered.code == 0, redelivered.output
    assert json.loads(redelivered.stdout)["batches_redelivered"] == 1
    assert ids_in(workspace.warehouse) == sorted(f"t{n}" for n in range(30))
