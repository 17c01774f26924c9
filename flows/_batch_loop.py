"""The batch loop: (guard → stage → checkpoint)* until HOLD₁ is used up.

Before each batch the memory guard picks its size (docs/design.md, invariant 8). A batch that runs
out of memory is cleaned up and tried again at half the size, at most three times, before the
run stops resumably; later batches then grow no larger than the size that fitted. After each
batch a stop signal is honoured (docs/design.md, invariant 9) and the batch's stage metrics go
to HOLD₂.

Light on the orchestrator (docs/design.md, invariant 12): a batch is one Prefect task run (the
guard is a plain call inside the loop, not a task of its own), and the progress artifact is
updated at most once per PROGRESS_INTERVAL_S, and when staging ends.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass, replace

from prefect import get_run_logger

from bqhold.flows._artifacts import start_progress, update_progress
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.errors import BatchOutOfMemory, ResourceError, disk_full_as_error
from bqhold.tasks.core.memory import (
    BatchPeak,
    GuardDecision,
    MemoryPolicy,
    MemoryReading,
    critical_share,
    decide,
    peak_as_read,
    read_memory,
    release_free_memory,
)
from bqhold.tasks.core.metrics import StageMetric
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.readers import estimate_bytes_per_row
from bqhold.tasks.core.stop import StopRequest
from bqhold.tasks.core.throttle import Throttle
from bqhold.tasks.stage import stage_batch
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_writer import CommittedBatch

MAX_OOM_RETRIES = 3
PROGRESS_INTERVAL_S = 10.0  # each update is an API request; the UI needs no more


@dataclass(frozen=True)
class GuardStats:
    """How often the guard (or an out-of-memory retry) changed the batch size."""

    shrinks: int = 0
    grows: int = 0
    oom_retries: int = 0

    def after(self, before: int, decision: GuardDecision, oom_retries: int) -> GuardStats:
        """The counts after one more batch: sized from `before` by `decision`, retried `oom_retries` times."""
        return GuardStats(
            self.shrinks + (decision.size < before),
            self.grows + (decision.size > before),
            self.oom_retries + oom_retries,
        )


def memory_policy(options: JobOptions) -> MemoryPolicy:
    """The guard's policy for a run's options; called before the first batch, it takes the memory
    held then as the footprint that batches have the rest of the budget above."""
    return MemoryPolicy(
        configured=options.batch_size,
        warn=options.memory_threshold / 100,
        critical=critical_share(options.memory_threshold),
        footprint=read_memory(options.memory_limit_mb).rss_bytes,
    )


def staged_batches(run: BatchRun, start: Checkpoint, stop: StopRequest) -> Iterator[tuple[Checkpoint, GuardStats]]:
    """Stage every remaining batch, yielding the checkpoint and the guard's changes so far after each one."""
    policy = memory_policy(run.options)
    checkpoint, size, stats = start, start.batch_size or run.options.batch_size, GuardStats()
    bytes_per_row = estimate_bytes_per_row(run.inputs[min(start.position.file_index, len(run.inputs) - 1)])
    progress, progress_due = start_progress(checkpoint, run.inputs), Throttle(PROGRESS_INTERVAL_S)
    last: CommittedBatch | None = None
    while not checkpoint.input_done:
        decision = _guard(policy, size, run.options.memory_limit_mb, bytes_per_row, last)
        committed, retries = _stage_in_memory(run, checkpoint, decision, policy.floor)
        stats = stats.after(size, decision, retries)
        checkpoint, size = committed.checkpoint, committed.checkpoint.batch_size
        if retries:  # a size that ran out of memory is not grown back into: the guard converges
            policy = replace(policy, configured=size)
        bytes_per_row, last = committed.bytes_per_row or bytes_per_row, committed
        _record(run, committed.timings)
        if progress_due.ready() or checkpoint.input_done:
            update_progress(progress, checkpoint, run.inputs)
        yield checkpoint, stats
        stop.check(f"after batch {committed.entry.batch} of run {run.run_id}")


def _guard(
    policy: MemoryPolicy,
    current: int,
    explicit_limit_mb: int | None,
    bytes_per_row: float,
    last: CommittedBatch | None,
) -> GuardDecision:
    """Read memory and pick the next batch size from the last batch's peak (before the first,
    from `bytes_per_row`); collect garbage when it asks (critical, or a peak over critical)."""
    reading = read_memory(explicit_limit_mb)
    peak = _peak_of(last, reading) if last is not None else None
    decision = decide(policy, current, reading, bytes_per_row, peak)
    if decision.collect:
        gc.collect()
        release_free_memory()
    if decision.size != current:
        get_run_logger().warning("batch size %s -> %s: %s", f"{current:,}", f"{decision.size:,}", decision.reason)
    return decision


def _peak_of(batch: CommittedBatch, reading: MemoryReading) -> BatchPeak | None:
    """The batch's rows read (its first stage's) and its highest RSS over its stages, in `reading`'s units."""
    if not batch.timings:
        return None
    peak_rss = max(stage.rss_peak_mb for stage in batch.timings) * 2**20
    return peak_as_read(batch.timings[0].rows, int(peak_rss), reading)


def _stage_in_memory(
    run: BatchRun, checkpoint: Checkpoint, decision: GuardDecision, floor: int
) -> tuple[CommittedBatch, int]:
    """Stage one batch, halving it each time it runs out of memory; return it and how often it was retried."""
    attempt = 0
    while True:
        try:
            return stage_batch(run, checkpoint, decision), attempt
        except BatchOutOfMemory as exc:
            _record(run, exc.timings)
            if attempt == MAX_OOM_RETRIES or decision.size <= floor:
                raise ResourceError(
                    f"{exc} {attempt + 1} time(s), down to {decision.size:,} rows; re-run with a smaller --batch-size "
                    "or more memory to resume"
                ) from exc
            gc.collect()
            attempt, size = attempt + 1, max(floor, decision.size // 2)
            decision = GuardDecision(size, f"out of memory: retrying the batch at {size:,} rows")
            get_run_logger().warning("%s: retrying it at %s rows", exc, f"{size:,}")


def _record(run: BatchRun, timings: tuple[StageMetric, ...]) -> None:
    """Keep a batch's stage timings in HOLD₂ (observations: written after the batch, not with it)."""
    with disk_full_as_error(run.options.hold_dir):
        run.store.record_metrics(list(timings))
