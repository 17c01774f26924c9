"""The batch loop: (guard → stage → checkpoint)* until HOLD₁ is used up, in groups of batches.

Before each batch the memory guard picks its size (docs/design.md, invariant 8). A batch that runs
out of memory is cleaned up and tried again at half the size, at most three times, before the
run stops resumably; later batches then grow no larger than the size that fitted. After each
batch a stop signal is honoured (docs/design.md, invariant 9) and the batch's stage metrics go
to HOLD₂.

Light on the orchestrator (docs/design.md, invariant 12): batches are staged in groups, one
Prefect task run (`stage-batches`) per group lasting about GROUP_S, so the task runs per minute
do not grow with the throughput. The guard is a plain call inside the loop; the progress view
(the artifact's percentage and description, and its log line: rows, seconds, rows/s, memory)
and the guard's log lines come at most once per VIEW_INTERVAL_S, the view also when staging ends.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from prefect import get_run_logger
from prefect.context import FlowRunContext
from prefect.logging.loggers import PrefectLogAdapter, flow_run_logger

from bqhold.flows._artifacts import start_progress, update_progress
from bqhold.tasks.core.checkpoint import Checkpoint, progress_percent
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
from bqhold.tasks.core.progress import StagingView, staging_view, window_line
from bqhold.tasks.core.readers import estimate_bytes_per_row
from bqhold.tasks.core.stop import StopRequest
from bqhold.tasks.core.throttle import Throttle
from bqhold.tasks.stage import stage_batch, stage_batches
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_writer import CommittedBatch

MAX_OOM_RETRIES = 3
# A task run costs ~3 state events; one per 10 s keeps staging at ~18 events a minute whatever
# the batch rate, and the UI still sees a task finish every 10 s, as often as the progress moves.
GROUP_S = 10.0
VIEW_INTERVAL_S = 10.0  # each progress update or log line is an API request; the UI needs no more


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


class BatchLoop:
    """The loop between two batches: the last checkpoint, the next size, the guard's policy and counts."""

    def __init__(self, run: BatchRun, start: Checkpoint) -> None:
        self.run, self.checkpoint, self.stats = run, start, GuardStats()
        self.policy, self.size = memory_policy(run.options), start.batch_size or run.options.batch_size
        self.bytes_per_row = estimate_bytes_per_row(run.inputs[min(start.position.file_index, len(run.inputs) - 1)])
        self.reading = read_memory(run.options.memory_limit_mb)  # the guard's last reading, for the view
        self.since, self.since_percent = start, progress_percent(start, run.inputs)
        self.started = time.monotonic()
        self.shown = self._view()  # the last view shown: a log line counts the batches after it
        self.progress, self.progress_due = start_progress(self.shown), Throttle(VIEW_INTERVAL_S)
        self.resize_said = Throttle(VIEW_INTERVAL_S)
        self.last: CommittedBatch | None = None  # the guard sizes the next batch from its peak
        self.agent_seen = (run.agent.usage.snapshot() if run.agent else None, time.monotonic())  # the last view

    def stage_next(self) -> tuple[Checkpoint, GuardStats]:
        """Guard, stage and record the batch after the last committed one (so a retried group redoes
        only the batch that failed); return its checkpoint and the guard's counts."""
        decision, self.reading = _guard(
            self.policy, self.size, self.run.options.memory_limit_mb, self.bytes_per_row, self.last
        )
        if decision.collect and self.run.agent is not None:
            self.run.agent.release()  # a model in memory: given back too, loaded again by the next call
            _free_memory()
        self._say_resized(decision)
        committed, retries = _stage_in_memory(self.run, self.checkpoint, decision, self.policy.floor)
        self.stats = self.stats.after(self.size, decision, retries)
        self.checkpoint, self.size = committed.checkpoint, committed.checkpoint.batch_size
        if retries:  # a size that ran out of memory is not grown back into: the guard converges
            self.policy = replace(self.policy, configured=self.size)
        self.bytes_per_row, self.last = committed.bytes_per_row or self.bytes_per_row, committed
        _record(self.run, committed.timings)
        if self.progress_due.ready() or self.checkpoint.input_done:
            self._show_progress()
        return self.checkpoint, self.stats

    def _view(self) -> StagingView:
        """Staging now: the last checkpoint, this session's pace and the guard's last memory reading."""
        return staging_view(
            self.checkpoint,
            progress_percent(self.checkpoint, self.run.inputs),
            self.since,
            self.since_percent,
            time.monotonic() - self.started,
            self.reading,
            self.policy.warn,
            self.policy.critical,
        )

    def _show_progress(self) -> None:
        """The progress artifact (one request) and one log line for the batches since the last view."""
        view = self._view()
        update_progress(self.progress, view)
        progress_logger().info(window_line(self.shown, view))
        self.shown = view
        self._say_agent_progress()

    def _say_agent_progress(self) -> None:
        """An agent pipeline's calls since the last view: rate, retries, rejections, tokens."""
        agent = self.run.agent
        if agent is None:
            return
        now, (before, since) = time.monotonic(), self.agent_seen
        limit = agent.runner.limit
        progress_logger().info(
            "agent %s: %s; concurrency now %d of %d",
            agent.agent.name,
            agent.usage.progress(before, now - since),
            limit.current,
            limit.ceiling,
        )
        self.agent_seen = (agent.usage.snapshot(), now)

    def _say_resized(self, decision: GuardDecision) -> None:
        """Log a change of the batch size, at most once per VIEW_INTERVAL_S (under pressure it changes every batch)."""
        if decision.size != self.size and self.resize_said.ready():
            get_run_logger().warning(
                "batch size %s -> %s: %s (at most one such line per %.0f s; every size is in the stage metrics)",
                f"{self.size:,}",
                f"{decision.size:,}",
                decision.reason,
                VIEW_INTERVAL_S,
            )


def progress_logger() -> PrefectLogAdapter:
    """The flow run's logger, also inside a `stage-batches` task run: the progress lines tell the
    run's story (and the local command mutes task runs' INFO lines, not the flow run's)."""
    context = FlowRunContext.get()
    if context is None or context.flow_run is None:
        return get_run_logger()
    return flow_run_logger(context.flow_run, context.flow)


def staged_batches(run: BatchRun, start: Checkpoint, stop: StopRequest) -> Iterator[tuple[Checkpoint, GuardStats]]:
    """Stage every remaining batch, yielding the checkpoint and the guard's changes so far after each one."""
    loop = BatchLoop(run, start)
    try:
        while not loop.checkpoint.input_done:
            yield from stage_batches(loop.stage_next, _group_over(loop, stop, time.monotonic() + GROUP_S))
            stop.check(f"after batch {loop.checkpoint.next_batch - 1} of run {run.run_id}")
    finally:
        run.read_ahead.close()


def _group_over(loop: BatchLoop, stop: StopRequest, deadline: float) -> Callable[[], bool]:
    """Whether a group ends after the batch just staged: the input ended, a stop was asked or its time is up."""
    return lambda: loop.checkpoint.input_done or stop.signum is not None or time.monotonic() >= deadline


def _guard(
    policy: MemoryPolicy,
    current: int,
    explicit_limit_mb: int | None,
    bytes_per_row: float,
    last: CommittedBatch | None,
) -> tuple[GuardDecision, MemoryReading]:
    """Read memory and pick the next batch size from the last batch's peak (before the first,
    from `bytes_per_row`); collect garbage when it asks (critical, or a peak over critical).
    Returns the decision and the reading it was made on."""
    reading = read_memory(explicit_limit_mb)
    peak = _peak_of(last, reading) if last is not None else None
    decision = decide(policy, current, reading, bytes_per_row, peak)
    if decision.collect:
        _free_memory()
    return decision, reading


def _free_memory() -> None:
    """Collect garbage and hand what the allocators keep free back to the system."""
    gc.collect()
    release_free_memory()


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
