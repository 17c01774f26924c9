"""Merge and replace survive a SIGKILL at every step of their delivery (the staging table's load,
its verification, the MERGE or swap, before the run is marked delivered): the re-run leaves the
table holding one row per key with the latest values (merge) or exactly the run's rows (replace),
verified, and no staging table behind."""

from __future__ import annotations

import signal

import duckdb

from bqhold.tasks.core.faults import KILL_ENV, PUBLISH_STEPS
from tests.conftest import Workspace
from tests.datasets import order, write_orders


def table_state(workspace: Workspace) -> tuple[dict[int, float], set[str]]:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        held = dict(con.execute("SELECT order_id, total FROM orders").fetchall())
        tables = {name for (name,) in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    return held, tables


def test_a_merge_killed_at_each_step_of_its_delivery_resumes_to_one_row_per_key(workspace: Workspace) -> None:
    args = ("--table", "orders", "--key", "order_id", "--write-mode", "merge", "--batch-size", "25")
    assert workspace.cli("--input", str(write_orders(workspace.root / "a.jsonl", range(0, 60))), *args).code == 0
    later = write_orders(workspace.root / "b.jsonl", range(40, 100), total=1000.0)

    # Each re-run gets further, and is killed there (the group loaded before a kill at load_committed
    # is found in the staging table and recorded, so the next step reached is verification's).
    for step in ("load_committed", "verified", *PUBLISH_STEPS):
        killed = workspace.cli("--input", str(later), *args, env={KILL_ENV: step})
        assert killed.code == -signal.SIGKILL, (step, killed.output)
    resumed = workspace.cli("--input", str(later), *args)

    assert resumed.code == 0 and resumed.summary["verified"], resumed.output
    held, tables = table_state(workspace)
    assert sorted(held) == list(range(100))
    assert all(held[n] == 1000.0 + n for n in range(40, 100)) and all(held[n] == order(n)["total"] for n in range(40))
    assert tables == {"orders"}


def test_a_replace_killed_after_its_swap_resumes_to_exactly_its_rows(workspace: Workspace) -> None:
    args = ("--table", "orders", "--key", "order_id", "--write-mode", "replace")
    assert workspace.cli("--input", str(write_orders(workspace.root / "a.jsonl", range(0, 60))), *args).code == 0
    source = write_orders(workspace.root / "a.jsonl", range(200, 230))

    assert workspace.cli("--input", str(source), *args, env={KILL_ENV: "published"}).code == -signal.SIGKILL
    resumed = workspace.cli("--input", str(source), *args)

    assert resumed.code == 0 and resumed.summary["verified"], resumed.output
    held, tables = table_state(workspace)
    assert sorted(held) == list(range(200, 230)) and tables == {"orders"}


def test_merge_without_a_key_is_refused_in_one_line(workspace: Workspace) -> None:
    result = workspace.cli("--input", str(write_orders(workspace.root / "a.jsonl", range(3))), "--write-mode", "merge")

    assert result.code == 2
    assert "--write-mode merge updates rows by their key: name it with --key" in result.stderr
    assert "Traceback" not in result.output
