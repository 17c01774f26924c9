"""The batch loop: (guard → stage → checkpoint)* until HOLD₁ is used up.

Before each batch the memory guard picks its size (docs/design.md, invariant 8). A batch that runs
out of memory is cleaned up and tried again at half the size, at most three times, before the
run stops resumably. After each batch a stop signal is honoured (docs/design.md, invariant 9) and the batch's
stage metrics go to HOLD₂.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from dataclasses import dataclass

from prefect import get_run_logger

from bqhold.flows._artifacts import start_progress, update_progress
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.errors import BatchOutOfMemory, ResourceError, disk_full_as_error
from bqhold.tasks.core.memory import MemoryPolicy, critical_share
from bqhold.tasks.core.metrics import MetricsRecorder
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.readers import estimate_bytes_per_row
from bqhold.tasks.core.stop import StopRequest
from bqhold.tasks.guard import guard_memory
from bqhold.tasks.plan import RunPlan
from bqhold.tasks.stage import stage_batch
from bqhold.tasks.storage.hold_store import HoldStore

MAX_OOM_RETRIES = 3


@dataclass
class GuardStats:
    """How often the guard (or an out-of-memory retry) changed the batch size."""

    shrinks: int = 0
    grows: int = 0
    oom_retries: int = 0


def memory_policy(options: JobOptions) -> MemoryPolicy:
    """The guard's policy for a run's options."""
    return MemoryPolicy(
        configured=options.batch_size,
        warn=options.memory_threshold / 100,
        critical=critical_share(options.memory_threshold),
    )


def staged_batches(
    store: HoldStore,
    pipeline: Pipeline,
    options: JobOptions,
    plan: RunPlan,
    start: Checkpoint,
    metrics: MetricsRecorder,
    stop: StopRequest,
    stats: GuardStats,
) -> Iterator[Checkpoint]:
    """Stage every remaining batch, yielding the checkpoint after each one."""
    logger = get_run_logger()
    policy = memory_policy(options)
    checkpoint, size = start, start.batch_size or options.batch_size
    bytes_per_row = estimate_bytes_per_row(plan.inputs[min(start.position.file_index, len(plan.inputs) - 1)])
    progress = start_progress(checkpoint, plan.inputs)
    while not checkpoint.input_done:
        decision = guard_memory(policy, size, options.memory_limit_mb, bytes_per_row)
        stats.shrinks += decision.size < size
        stats.grows += decision.size > size
        size, metrics.batch_size, metrics.decision = decision.size, decision.size, decision.reason
        for attempt in range(MAX_OOM_RETRIES + 1):
            try:
                committed = stage_batch(store, pipeline, options, plan.inputs, checkpoint, size, metrics)
                break
            except BatchOutOfMemory as exc:
                if attempt == MAX_OOM_RETRIES or size <= policy.floor:
                    raise ResourceError(
                        f"{exc} {attempt + 1} time(s), down to {size:,} rows; re-run with a smaller --batch-size "
                        "or more memory to resume"
                    ) from exc
                gc.collect()
                size = max(policy.floor, size // 2)
                stats.oom_retries += 1
                metrics.batch_size, metrics.decision = size, f"out of memory: retrying the batch at {size:,} rows"
                logger.warning("%s: retrying it at %s rows", exc, f"{size:,}")
        checkpoint = committed.checkpoint
        bytes_per_row = committed.bytes_per_row or bytes_per_row
        with disk_full_as_error(options.hold_dir):
            store.record_metrics(metrics.drain())
        update_progress(progress, checkpoint, plan.inputs)
        yield checkpoint
        stop.check(f"after batch {committed.entry.batch} of run {plan.run_id}")
