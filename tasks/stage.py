"""Prefect task: one batch from HOLD₁ into HOLD₂ (read, transform, write, checkpoint)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from bqhold.tasks.core import faults
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.errors import BatchOutOfMemory, disk_full_as_error
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.ledger import SourceSpan
from bqhold.tasks.core.metrics import MetricsRecorder
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import Position, RawBatch
from bqhold.tasks.core.schema import read_as_text
from bqhold.tasks.core.staging import BatchContext, prepare_batch
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.hold_writer import CommittedBatch, commit_batch


def next_start(raw: RawBatch, inputs: tuple[InputFile, ...]) -> tuple[Position, bool]:
    """Where the batch after `raw` starts, and whether the input is used up."""
    if not raw.exhausted:
        return raw.end, False
    following = raw.end.file_index + 1
    if following >= len(inputs):
        return Position(following, 0, 0), True
    item = inputs[following]
    return Position(following, item.start_offset, item.start_line, item.start_crc), False


@contextmanager
def resource_errors(batch: int, batch_size: int, hold_dir: object) -> Iterator[None]:
    """Name what ran out: memory (the runner retries the batch smaller) or disk (stop, resumable)."""
    with disk_full_as_error(hold_dir):
        try:
            yield
        except MemoryError as exc:
            raise BatchOutOfMemory(f"batch {batch} of {batch_size:,} rows ran out of memory") from exc


@task(name="stage-batch", cache_policy=NO_CACHE)
def stage_batch(
    store: HoldStore,
    pipeline: Pipeline,
    options: JobOptions,
    inputs: tuple[InputFile, ...],
    checkpoint: Checkpoint,
    batch_size: int,
    metrics: MetricsRecorder,
) -> CommittedBatch:
    """Stage the batch the checkpoint points at and return the advanced checkpoint."""
    with resource_errors(checkpoint.next_batch, batch_size, options.hold_dir):
        batch = checkpoint.next_batch
        source = inputs[checkpoint.position.file_index]
        warehouse = parse_warehouse(options.warehouse).display()  # dedupe keys are scoped by it
        known = store.staged_schema(options.table)
        with metrics.stage("read", batch) as stage:
            text = read_as_text(known, options.string_columns)
            raw = read_batch(source, checkpoint.position, batch_size, options.max_record_bytes, text)
            stage.rows = raw.records_read
        faults.reached("batch_read", batch)
        context = BatchContext(
            run_id=checkpoint.run_id,
            batch=batch,
            source=source.path,
            loaded_at=datetime.now(UTC),
            key=options.key,
            max_error_rate=options.max_error_rate,
            text_columns=options.string_columns,
        )
        with metrics.stage("transform", batch) as stage:
            prepared = prepare_batch(
                raw,
                pipeline.transform,
                known,
                context,
                lambda keys: store.find_duplicates(warehouse, options.table, keys),
            )
            stage.rows = prepared.rows.height
        faults.reached("batch_transformed", batch)
        end, input_done = next_start(raw, inputs)
        span = SourceSpan(raw.end, raw.exhausted, raw.file_size, raw.file_mtime_ns)
        del raw  # the frame is no longer needed; free it before the write
        committed = commit_batch(
            store,
            options.table,
            checkpoint,
            prepared,
            end,
            input_done,
            batch_size,
            metrics,
            source=span,
            warehouse=warehouse,
        )
    for column in sorted(prepared.new_columns.keys() & known.keys()):
        get_run_logger().warning(
            "column %r of table %s widened from %s to %s (batch %d holds values the old type cannot)",
            column,
            options.table,
            known[column].value,
            prepared.new_columns[column].value,
            batch,
        )
    return committed
