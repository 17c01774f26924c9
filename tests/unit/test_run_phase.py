"""A run's phase changes through one call, HoldStore.set_phase: the run_status row (the truth)
first, then checkpoint.json's copy — on a real DuckDB file and real checkpoint files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.checkpoint import Checkpoint, Phase
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.runs import JobIdentity, RunRecord
from bqhold.tasks.storage.hold_store import HoldStore

JOB = JobIdentity("generic", "/in/events.jsonl", "events", "id", "duckdb:///tmp/w.duckdb")


def new_run(store: HoldStore, run_id: str) -> Checkpoint:
    start = Checkpoint(run_id, "fp", batch_size=100)
    inputs = (InputFile(JOB.input_spec, InputFormat.JSONL, 1, 0),)
    store.create_run(RunRecord(run_id, JOB, inputs, "fp", Phase.STAGING, datetime.now(UTC)), start)
    return start


def status(store: HoldStore, run_id: str) -> Phase:
    return store.get_run(run_id).status


def saved_phase(layout: HoldLayout, run_id: str) -> Phase:
    return checkpoints.load(layout.checkpoint(run_id)).phase


def test_a_new_run_starts_with_its_status_and_its_checkpoint(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        start = new_run(store, "r1")

        assert status(store, "r1") is Phase.STAGING
        assert checkpoints.load(layout.checkpoint("r1")) == start


def test_a_phase_change_writes_the_status_and_the_checkpoint_the_runner_holds(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        start = new_run(store, "r1")
        ahead = start.advanced(start.position, start.counters, True, 50)  # newer than the file

        written = store.set_phase("r1", Phase.LOADING, checkpoint=ahead)

        assert written.phase is Phase.LOADING and written.next_batch == 1
        assert status(store, "r1") is Phase.LOADING
        assert checkpoints.load(layout.checkpoint("r1")) == written


def test_without_a_checkpoint_the_saved_one_takes_the_new_phase(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        new_run(store, "r1")

        store.set_phase("r1", Phase.CLEANED, "cleaned after verifying 3 rows")

        assert status(store, "r1") is Phase.CLEANED and saved_phase(layout, "r1") is Phase.CLEANED


def test_a_damaged_or_missing_checkpoint_does_not_stop_the_status_change(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        new_run(store, "damaged")
        layout.checkpoint("damaged").write_bytes(b"\x00garbage{")
        new_run(store, "missing")
        layout.checkpoint("missing").unlink()

        assert store.set_phase("damaged", Phase.UNVERIFIED) is None
        assert store.set_phase("missing", Phase.UNVERIFIED) is None

        assert status(store, "damaged") is Phase.UNVERIFIED and status(store, "missing") is Phase.UNVERIFIED
        assert layout.checkpoint("damaged").read_bytes() == b"\x00garbage{"
        assert not layout.checkpoint("missing").exists()


def test_the_status_is_written_first_so_a_failed_checkpoint_write_leaves_the_copy_behind(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        start = new_run(store, "r1")
        layout.checkpoint("r1").unlink()
        layout.checkpoint("r1").mkdir()  # the checkpoint cannot be replaced: as if the process died there

        with pytest.raises(OSError):
            store.set_phase("r1", Phase.DELIVERED, "verified", checkpoint=start)

        assert status(store, "r1") is Phase.DELIVERED
        assert layout.checkpoint("r1").is_dir()


def test_abandoning_a_run_releases_its_dedupe_keys_with_its_status(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        new_run(store, "r1")
        keys = pl.Series(["k"])
        hashes = store.find_duplicates(JOB.warehouse, JOB.table, keys).hashes
        store.store_keys(JOB.table, JOB.warehouse, "r1", 0, pl.DataFrame({"key": keys, "key_hash": hashes}))
        assert store.find_duplicates(JOB.warehouse, JOB.table, keys).staged.to_list() == [True]

        store.set_phase("r1", Phase.ABANDONED, "given up")

        assert status(store, "r1") is Phase.ABANDONED and saved_phase(layout, "r1") is Phase.ABANDONED
        assert store.find_duplicates(JOB.warehouse, JOB.table, keys).staged.to_list() == [False]
