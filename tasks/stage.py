"""Prefect task: a group of batches from HOLD₁ into HOLD₂, each read, transformed, written and
checkpointed by `stage_batch` (docs/design.md, invariant 12: one task run per group, not per batch)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from typing import TypeVar

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from bqhold.tasks.core import faults, spool
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.errors import BatchOutOfMemory, disk_full_as_error
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.ledger import SourceSpan
from bqhold.tasks.core.memory import GuardDecision
from bqhold.tasks.core.metrics import StageTimings
from bqhold.tasks.core.read_ahead import ReadRequest
from bqhold.tasks.core.records import Position, RawBatch
from bqhold.tasks.core.schema import read_as_text
from bqhold.tasks.core.staging import BatchContext, PreparedBatch, prepare_batch
from bqhold.tasks.core.write_modes import through_staging
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_writer import BatchEnd, CommittedBatch, write_batch

Staged = TypeVar("Staged")


def next_start(raw: RawBatch, inputs: tuple[InputFile, ...]) -> tuple[Position, bool]:
    """Where the batch after `raw` starts, and whether the input is used up."""
    if not raw.exhausted:
        return raw.end, False
    following = raw.end.file_index + 1
    if following >= len(inputs):
        return Position(following, 0, 0), True
    item = inputs[following]
    return Position(following, item.start_offset, item.start_line, item.start_crc), False


def batch_end(raw: RawBatch, inputs: tuple[InputFile, ...]) -> BatchEnd:
    """Where the batch `raw` leaves HOLD₁."""
    start, input_done = next_start(raw, inputs)
    return BatchEnd(start, input_done, SourceSpan(raw.end, raw.exhausted, raw.file_size, raw.file_mtime_ns))


@contextmanager
def resource_errors(batch: int, timings: StageTimings, hold_dir: object) -> Iterator[None]:
    """Name what ran out: memory (the runner retries the batch smaller, keeping the stages measured)
    or disk (stop, resumable)."""
    with disk_full_as_error(hold_dir):
        try:
            yield
        except MemoryError as exc:
            message = f"batch {batch} of {timings.batch_size:,} rows ran out of memory"
            raise BatchOutOfMemory(message, tuple(timings.records)) from exc


@task(name="stage-batches", cache_policy=NO_CACHE)
def stage_batches(stage_next: Callable[[], Staged], group_over: Callable[[], bool]) -> Iterator[Staged]:
    """One task run for a group of batches: yield what `stage_next` stages, batch after batch, until
    `group_over()` says the group ends. `stage_next` starts from the last committed checkpoint, so a
    retry of the task redoes only the batch that failed, not the group."""
    while True:
        yield stage_next()
        if group_over():
            return


def stage_batch(run: BatchRun, checkpoint: Checkpoint, sizing: GuardDecision) -> CommittedBatch:
    """Stage the batch the checkpoint points at, `sizing.size` rows at most; return it committed,
    with the advanced checkpoint and the timings of its stages."""
    batch, options = checkpoint.next_batch, run.options
    timings = run.metrics.timings(batch, sizing.size, sizing.reason)
    with resource_errors(batch, timings, options.hold_dir):
        known = run.store.staged_schema(run.table)
        with timings.stage("read") as stage:
            spool.drop(run.inputs[: checkpoint.position.file_index])  # copies of inputs read to the end
            source, position = run.inputs[checkpoint.position.file_index], checkpoint.position
            text, parse = read_as_text(known, options.string_columns), run.learnt.choice(options.parser)
            request = ReadRequest(
                source, position, sizing.size, options.max_record_bytes, text, parse, options.null_markers
            )
            raw = run.read_ahead.read(request)
            run.learnt.keep(raw)
            stage.rows, stage.label = raw.records_read, "fast" if raw.fast else ""
        faults.reached("batch_read", batch)
        with timings.stage("transform") as stage:
            prepared = _prepare(run, checkpoint, raw, known)
            stage.rows = prepared.rows.height
        faults.reached("batch_transformed", batch)
        end = batch_end(raw, run.inputs)
        del raw  # the frame is no longer needed; free it before the write
        _read_next_ahead(run, end, request, sizing)
        committed = write_batch(run, checkpoint, prepared, end, sizing)
        if run.agent is not None:
            run.agent.settle(committed.checkpoint.position, committed.checkpoint.next_batch)  # answers in HOLD₂ now
    _warn_widened(run.table, batch, known, prepared.new_columns)
    return replace(committed, timings=tuple(timings.records) + committed.timings)


def _read_next_ahead(run: BatchRun, end: BatchEnd, request: ReadRequest, sizing: GuardDecision) -> None:
    """Start reading the next batch, at this one's size, while this one is written, if the guard
    found room for it (see memory.decide)."""
    position = end.next_start
    if end.input_done or not sizing.read_ahead:
        return
    parse = run.learnt.choice(run.options.parser)
    run.read_ahead.start(replace(request, item=run.inputs[position.file_index], position=position, parse=parse))


def _dedupe_scope(run: BatchRun) -> str | None:
    """Whose keys count as staged: every run's of the table (append), or this run's only (merge
    and replace make the table hold one row per key themselves)."""
    return run.run_id if through_staging(run.options.write_mode) else None


def _prepare(run: BatchRun, checkpoint: Checkpoint, raw: RawBatch, known: Schema) -> PreparedBatch:
    """The batch's rows as HOLD₂ stages them (transformed, conformed, deduplicated)."""
    options = run.options
    context = BatchContext(
        run_id=run.run_id,
        batch=checkpoint.next_batch,
        source=run.inputs[checkpoint.position.file_index].path,
        loaded_at=datetime.now(UTC),
        key=options.key,
        max_error_rate=options.max_error_rate,
        text_columns=options.string_columns,
        nesting=options.nesting,
        declared=run.pipeline.column_types,
    )
    agent, file_index, batch = run.agent, checkpoint.position.file_index, checkpoint.next_batch
    return prepare_batch(
        raw,
        run.pipeline.transform,
        known,
        context,
        lambda keys: run.store.find_duplicates(run.warehouse, run.table, keys, within=_dedupe_scope(run)),
        None if agent is None else lambda rows: agent.answer(rows, file_index, batch),
    )


def _warn_widened(table: str, batch: int, known: Schema, new_columns: Schema) -> None:
    """Say which staged columns the batch widened (their old type could not hold its values)."""
    for column in sorted(new_columns.keys() & known.keys()):
        get_run_logger().warning(
            "column %r of table %s widened from %s to %s (batch %d holds values the old type cannot)",
            column,
            table,
            known[column].value,
            new_columns[column].value,
            batch,
        )
