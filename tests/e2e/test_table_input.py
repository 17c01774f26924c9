"""A DuckDB table as HOLD₁ (`--input duckdb:///file.duckdb?table=NAME`, tasks/core/table_source.py):
the real command killed at every named step in turn, then run to its end, a table changed under a run refused,
a table grown after delivery read from where the delivery ended."""

from __future__ import annotations

import signal
from pathlib import Path

import duckdb
import pytest

from bqhold.tasks.core.faults import BATCH_STEPS, KILL_ENV, LOAD_STEPS
from tests.conftest import Workspace

ROWS = 2_000
BATCH_SIZE = 400
KILLED_BATCH = 2


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A DuckDB file with a table of nested, typed events (ids e0..e1999)."""
    path = tmp_path / "source.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""
            CREATE TABLE events AS SELECT 'e' || range AS event_id, range AS n,
                {{'city': 'c' || (range % 7), 'zip': range % 100}} AS address,
                TIMESTAMP '2026-11-29 00:00:00' + INTERVAL (range) SECOND AS ts
            FROM range({ROWS})
            """
        )
    return path


def _spec(source: Path) -> str:
    return f"duckdb://{source}?table=events"


def _loaded(workspace: Workspace) -> list[tuple]:
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        return con.execute("SELECT event_id, n, address.city, epoch_us(ts) FROM events ORDER BY n").fetchall()


def _expected(source: Path) -> list[tuple]:
    with duckdb.connect(str(source), read_only=True) as con:
        # A naive TIMESTAMP is staged as UTC (TIMESTAMPTZ): the same instant.
        return con.execute("SELECT event_id, n, address.city, epoch_us(ts) FROM events ORDER BY n").fetchall()


def _kill_points() -> list[str]:
    """The named steps in the order one run after another reaches them: the batch steps at the
    killed batch until it is committed (the checkpoint is then the next batch's), then the loads'
    (a group loaded before a kill at load_committed is found and recorded by the next run, which
    so never reaches load_recorded: tests/e2e/test_kill_resume.py kills there)."""
    committed = BATCH_STEPS.index("ledger_committed")
    batch = [f"{step}@{KILLED_BATCH + (n > committed)}" for n, step in enumerate(BATCH_STEPS)]
    return [*batch, *(step for step in LOAD_STEPS if step != "load_recorded")]


def test_sigkill_at_every_step_in_turn_then_rerun_delivers_each_row_once(workspace: Workspace, source: Path) -> None:
    args = ("--input", _spec(source), "--key", "event_id", "--batch-size", str(BATCH_SIZE))

    for at in _kill_points():  # each run resumes the one before and is killed one step further
        killed = workspace.cli(*args, env={KILL_ENV: at})
        assert killed.code == -signal.SIGKILL, (at, killed.output)
    resumed = workspace.cli(*args)

    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    assert resumed.summary["rows_written"] == ROWS and resumed.summary["verified"] is True
    assert _loaded(workspace) == _expected(source)


def test_a_row_changed_below_the_position_is_refused_and_a_grown_table_delivers_its_tail(
    workspace: Workspace, source: Path
) -> None:
    args = ("--input", _spec(source), "--key", "event_id", "--batch-size", str(BATCH_SIZE))
    killed = workspace.cli(*args, env={KILL_ENV: f"checkpoint_written@{KILLED_BATCH}"})
    assert killed.code == -signal.SIGKILL, killed.output
    with duckdb.connect(str(source)) as con:
        con.execute("UPDATE events SET n = -1 WHERE event_id = 'e5'")

    refused = workspace.cli(*args)
    assert refused.code == 2, refused.output
    assert f"the rows of {_spec(source)} below rowid 1,200, already staged, differ now" in refused.output

    with duckdb.connect(str(source)) as con:
        con.execute("UPDATE events SET n = 5 WHERE event_id = 'e5'")
    assert workspace.cli(*args).code == 0
    with duckdb.connect(str(source)) as con:
        con.execute(
            "INSERT INTO events SELECT 'f' || range, 10000 + range, {'city': 'x', 'zip': 0}, now() FROM range(300)"
        )
    grown = workspace.cli(*args)

    assert grown.code == 0, grown.output
    assert "grown since delivered" in grown.output
    assert grown.summary["rows_read"] == 300
    assert _loaded(workspace) == _expected(source)


def test_a_table_that_is_not_there_is_one_line_and_exit_2(workspace: Workspace, source: Path) -> None:
    result = workspace.cli("--input", f"duckdb://{source}?table=nope")

    assert result.code == 2, result.output
    assert f"no table nope in {source}" in result.output and "Traceback" not in result.output
