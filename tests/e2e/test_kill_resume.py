"""Exactly once (docs/design.md, invariant 3): SIGKILL the real command at every named step, re-run
it, and count.

Each case kills `python flows/run.py` at one step of the batch path (or of the load), then
runs the same command again. The re-run must say it resumes and finish with every input
record exactly once in HOLD₂ and in the warehouse, and every HOLD₂ line must parse.
"""

from __future__ import annotations

import signal

import duckdb
import pytest

from bench.events import write as write_events
from bqhold.tasks.core.faults import BATCH_STEPS, KILL_ENV, LOAD_STEPS
from tests.conftest import Workspace, expected_records
from tests.segments import read_segment, segment_files

BATCH_SIZE = 400
KILLED_BATCH = 2


def assert_exactly_once(workspace: Workspace, ids: set[str], bad: int, summary: dict) -> None:
    assert summary["rows_written"] == len(ids)
    assert summary["rows_quarantined"] == bad
    assert summary["rows_loaded"] == len(ids)
    assert summary["verified"] is True
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        loaded = con.execute("SELECT event_id, count(*) FROM events GROUP BY event_id HAVING count(*) > 1").fetchall()
        assert loaded == [], "duplicates in the warehouse"
        assert {row[0] for row in con.execute("SELECT event_id FROM events").fetchall()} == ids
    staged_ids = []
    for segment in segment_files(workspace.hold):
        staged_ids.extend(read_segment(segment)["event_id"])  # every HOLD₂ segment reads
    # Orphan segments of a crashed attempt are replaced under the same name, never added.
    assert sorted(staged_ids) == sorted(ids)


@pytest.fixture
def events_file(tmp_path):
    return write_events(tmp_path / "events.jsonl", rows=2_000, bad_lines=True)


@pytest.mark.slow
@pytest.mark.parametrize("step", BATCH_STEPS + LOAD_STEPS)
def test_sigkill_at_step_then_rerun_delivers_exactly_once(workspace: Workspace, events_file, step: str) -> None:
    ids, bad = expected_records(events_file)
    at = f"{step}@{KILLED_BATCH}" if step in BATCH_STEPS else step
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE))

    killed = workspace.cli(*args, env={KILL_ENV: at})
    assert killed.code == -signal.SIGKILL, killed.output

    resumed = workspace.cli(*args)
    assert resumed.code == 0, resumed.output
    assert "resuming run" in resumed.output
    if step in BATCH_STEPS:
        expected_start = KILLED_BATCH + (1 if step in ("ledger_committed", "checkpoint_written") else 0)
        assert resumed.summary["resumed_from_batch"] == expected_start
    assert_exactly_once(workspace, ids, bad, resumed.summary)


@pytest.mark.slow
def test_two_kills_in_a_row_still_exactly_once(workspace: Workspace, events_file) -> None:
    ids, bad = expected_records(events_file)
    args = ("--input", str(events_file), "--key", "event_id", "--batch-size", str(BATCH_SIZE))
    assert workspace.cli(*args, env={KILL_ENV: "segment_renamed@1"}).code == -signal.SIGKILL
    assert workspace.cli(*args, env={KILL_ENV: "ledger_committed@3"}).code == -signal.SIGKILL
    final = workspace.cli(*args)
    assert final.code == 0, final.output
    assert_exactly_once(workspace, ids, bad, final.summary)
