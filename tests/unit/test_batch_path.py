"""The batch path's steps take the run context plus what varies and return what they did: the
committed batch, its checkpoint and its stage timings — on a real HOLD₂ (DuckDB file, segment
files, checkpoint), with stage_batch (a plain function the `stage-batches` task calls), without
the Prefect engine."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import polars as pl
import pytest

from bqhold.flows._batch_loop import GuardStats
from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.checkpoint import Checkpoint, Counters
from bqhold.tasks.core.errors import BatchOutOfMemory
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.memory import GuardDecision
from bqhold.tasks.core.metrics import MetricsRecorder, RssSampler
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.stage import resource_errors, stage_batch
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_store import HoldStore
from tests.segments import read_segment

PIPELINE = Pipeline("identity", lambda frame: frame, "rows as read")


@pytest.fixture
def batch_run(tmp_path: Path):
    """A run's context over a 5-record JSONL file, on a real HOLD₂ in tmp_path."""
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps({"id": f"e{n}", "n": n}) + "\n" for n in range(5)))
    options = JobOptions(input=str(source), table="events", key="id", hold_dir=tmp_path / "hold")
    with HoldStore(HoldLayout(options.hold_dir)) as store, RssSampler() as sampler:
        yield BatchRun(
            store, PIPELINE, options, "r1", resolve_inputs(str(source)), "duckdb:///w", MetricsRecorder("r1", sampler)
        )


def test_each_batch_comes_back_committed_with_its_checkpoint_and_its_stage_timings(batch_run: BatchRun):
    start = Checkpoint("r1", "fp", batch_size=3)
    first = stage_batch(batch_run, start, GuardDecision(3, "batch halved"))
    second = stage_batch(batch_run, first.checkpoint, GuardDecision(3, ""))

    assert (first.checkpoint.next_batch, first.checkpoint.input_done) == (1, False)
    assert (second.checkpoint.next_batch, second.checkpoint.input_done) == (2, True)
    assert second.checkpoint.counters == Counters(rows_read=5, rows_written=5)
    assert checkpoints.load(batch_run.store.layout.checkpoint("r1")) == second.checkpoint
    assert [entry.counters.rows_written for entry in batch_run.store.ledger("r1")] == [3, 2]
    segment = batch_run.store.segment_path(first.entry)
    assert [row["id"] for row in read_segment(segment).to_dicts()] == ["e0", "e1", "e2"]
    timings = [(t.batch, t.stage, t.rows, t.batch_size, t.decision) for t in first.timings]
    assert timings == [
        (0, "read", 3, 3, "batch halved"),
        (0, "transform", 3, 3, "batch halved"),
        (0, "write", 3, 3, "batch halved"),
        (0, "checkpoint", 0, 3, "batch halved"),
    ]


def test_a_key_staged_by_an_earlier_batch_is_skipped_in_the_jobs_warehouse(batch_run: BatchRun, tmp_path: Path):
    first = stage_batch(batch_run, Checkpoint("r1", "fp"), GuardDecision(5, ""))
    again = tmp_path / "again.jsonl"
    again.write_text(json.dumps({"id": "e4", "n": 4}) + "\n" + json.dumps({"id": "e9", "n": 9}) + "\n")
    later = replace(batch_run, run_id="r2", inputs=resolve_inputs(str(again)))

    second = stage_batch(later, Checkpoint("r2", "fp"), GuardDecision(5, ""))

    assert first.checkpoint.counters.rows_written == 5
    assert second.checkpoint.counters == Counters(rows_read=2, rows_written=1, duplicates_skipped=1)


def test_a_batch_that_runs_out_of_memory_keeps_the_timings_of_its_stages(batch_run: BatchRun):
    timings = batch_run.metrics.timings(7, 4_000)
    with (
        pytest.raises(BatchOutOfMemory, match="batch 7 of 4,000 rows ran out of memory") as caught,
        resource_errors(7, timings, batch_run.options.hold_dir),
    ):
        with timings.stage("read") as stage:
            stage.rows = 4_000
        with timings.stage("transform"):
            raise MemoryError

    assert [(t.stage, t.rows, t.batch_size) for t in caught.value.timings] == [
        ("read", 4_000, 4_000),
        ("transform", 0, 4_000),
    ]


def test_each_step_gets_its_own_timings():
    with RssSampler() as sampler:
        recorder = MetricsRecorder("r1", sampler)
        one, two = recorder.timings(0, 100), recorder.timings(1, 50, "batch halved")
        with one.stage("read"):
            pass

    assert [(t.batch, t.stage) for t in one.records] == [(0, "read")] and two.records == []


def test_guard_stats_count_shrinks_grows_and_retries():
    stats = GuardStats().after(1_000, GuardDecision(500, "halved"), oom_retries=0)
    stats = stats.after(500, GuardDecision(750, "grows back"), oom_retries=2)
    stats = stats.after(750, GuardDecision(750, ""), oom_retries=0)

    assert stats == GuardStats(shrinks=1, grows=1, oom_retries=2)


def test_a_record_whose_key_only_collides_with_a_staged_hash_is_staged(batch_run: BatchRun, tmp_path: Path):
    stage_batch(batch_run, Checkpoint("r1", "fp"), GuardDecision(5, ""))
    store = batch_run.store  # another stored key with e7's hash: a 64-bit collision, forced
    e7_hash = store.find_duplicates(batch_run.warehouse, batch_run.table, pl.Series(["e7"])).hashes
    forged = pl.DataFrame({"key": ["not-e7"], "key_hash": e7_hash})
    store.store_keys(batch_run.table, batch_run.warehouse, "r1", 0, forged)
    again = tmp_path / "again.jsonl"
    again.write_text("".join(json.dumps({"id": key, "n": 0}) + "\n" for key in ("e7", "e3", "e4")))
    later = replace(batch_run, run_id="r2", inputs=resolve_inputs(str(again)))

    second = stage_batch(later, Checkpoint("r2", "fp"), GuardDecision(5, ""))

    assert second.checkpoint.counters == Counters(rows_read=3, rows_written=1, duplicates_skipped=2)
    assert [row["id"] for row in read_segment(batch_run.store.segment_path(second.entry)).to_dicts()] == ["e7"]


@pytest.mark.parametrize(
    ("parser", "read_stages"), [("fast", ["read", "read:fast", "read:fast"]), ("exact", ["read"] * 3)]
)
def test_the_run_keeps_the_learnt_schema_so_later_batches_parse_fast_unless_exact_is_asked(
    batch_run: BatchRun, parser: str, read_stages: list[str]
):
    run = replace(batch_run, options=batch_run.options.model_copy(update={"parser": parser}))
    checkpoint, stages = Checkpoint("r1", "fp"), []
    while not checkpoint.input_done:
        committed = stage_batch(run, checkpoint, GuardDecision(2, ""))
        checkpoint = committed.checkpoint
        stages += [t.stage for t in committed.timings if t.stage.startswith("read")]

    assert stages == read_stages
    segments = [read_segment(run.store.segment_path(entry)) for entry in run.store.ledger("r1")]
    assert pl.concat(segments)["id"].to_list() == [f"e{n}" for n in range(5)]


def test_a_batch_the_guard_lets_read_ahead_has_the_next_one_read_while_it_is_written(batch_run: BatchRun):
    run = batch_run
    first = stage_batch(run, Checkpoint("r1", "fp", batch_size=3), GuardDecision(3, "", read_ahead=True))
    ahead, _ = run.read_ahead._pending
    second = stage_batch(run, first.checkpoint, GuardDecision(3, ""))

    assert (ahead.position, ahead.size) == (first.checkpoint.position, 3), "the next batch, at this one's size"
    assert run.read_ahead._pending is None, "taken by the next batch, which read nothing ahead itself"
    segments = [read_segment(run.store.segment_path(entry)) for entry in run.store.ledger("r1")]
    assert [frame["id"].to_list() for frame in segments] == [["e0", "e1", "e2"], ["e3", "e4"]]
    assert second.checkpoint.input_done
