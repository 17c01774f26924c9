"""How far staging is, as a person reads it: rows, rate, ETA, elapsed, batch size, memory.

Pure: the batch loop (the progress artifact and its log line) and the local command's progress
bar build a `StagingView` from a checkpoint and a memory reading, and show it with the texts
below. Rates count rows read from HOLD₁ in this session (a resumed run's earlier sessions are
not timed here); the ETA extrapolates the bytes of HOLD₁ read in this session
(`checkpoint.progress_percent`), so batches of short or long records do not skew it.
"""

from __future__ import annotations

from dataclasses import dataclass

from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.memory import MemoryReading

NOT_YET = "not known yet"
# How a reading's limit is named for a person (MemoryReading.limit_source).
LIMIT_SOURCES = {
    "explicit": "--memory-limit-mb",
    "cgroup v2": "the container's (cgroup v2)",
    "cgroup v1": "the container's (cgroup v1)",
    "machine": "the machine's",
}


def rate(rows: int, seconds: float) -> float | None:
    """Rows per second, or None before any time has passed."""
    return rows / seconds if seconds > 0 else None


def eta_s(percent_before: float, percent_now: float, elapsed_s: float) -> float | None:
    """Seconds left at the pace from `percent_before` to `percent_now` over `elapsed_s`; 0 when
    done, None while nothing has moved (no pace to extrapolate)."""
    if percent_now >= 100:
        return 0.0
    if percent_now <= percent_before or elapsed_s <= 0:
        return None
    return elapsed_s * (100 - percent_now) / (percent_now - percent_before)


def duration_text(seconds: float | None) -> str:
    """`4.2 s`, `42 s`, `3 min 05 s`, `2 h 05 min`."""
    if seconds is None:
        return NOT_YET
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600:,} h {whole % 3600 // 60:02d} min"


def rate_text(rows_per_s: float | None) -> str:
    """`45,678 rows/s` (one decimal below 100)."""
    if rows_per_s is None:
        return NOT_YET
    return f"{rows_per_s:,.0f} rows/s" if rows_per_s >= 100 else f"{rows_per_s:,.1f} rows/s"


def megabytes(size_bytes: float) -> str:
    """`1,234 MB`."""
    return f"{size_bytes / 2**20:,.0f} MB"


@dataclass(frozen=True)
class StagingView:
    """Staging at one moment: the run's totals, this session's pace, and memory against its limit."""

    run_id: str
    percent: float  # of HOLD₁'s bytes
    rows_read: int  # over the run
    rows_staged: int
    rows_set_aside: int  # quarantined or skipped as duplicates
    session_rows: int  # read in this session: what the rate counts
    elapsed_s: float  # this session's staging so far
    eta_s: float | None
    next_batch: int
    batch_size: int
    memory: MemoryReading | None  # the memory guard's last reading
    warn: float  # the guard's thresholds, as shares of the limit
    critical: float

    @property
    def rows_per_s(self) -> float | None:
        """This session's rows read per second."""
        return rate(self.session_rows, self.elapsed_s)

    @property
    def done(self) -> bool:
        """Whether HOLD₁ has been read to its end."""
        return self.percent >= 100


def staging_view(
    checkpoint: Checkpoint,
    percent: float,
    since: Checkpoint,
    since_percent: float,
    elapsed_s: float,
    memory: MemoryReading | None,
    warn: float,
    critical: float,
) -> StagingView:
    """The view at `checkpoint` (`percent` through HOLD₁) of a session that started at `since`."""
    counters = checkpoint.counters
    return StagingView(
        run_id=checkpoint.run_id,
        percent=100.0 if checkpoint.input_done else percent,
        rows_read=counters.rows_read,
        rows_staged=counters.rows_written,
        rows_set_aside=counters.rows_quarantined + counters.duplicates_skipped,
        session_rows=counters.rows_read - since.counters.rows_read,
        elapsed_s=elapsed_s,
        eta_s=0.0 if checkpoint.input_done else eta_s(since_percent, percent, elapsed_s),
        next_batch=checkpoint.next_batch,
        batch_size=checkpoint.batch_size,
        memory=memory,
        warn=warn,
        critical=critical,
    )


def memory_text(view: StagingView) -> str:
    """`312 MB of 4,096 MB (8%) · limit: the machine's · warning at 80%, critical at 90%`."""
    reading = view.memory
    if reading is None:
        return NOT_YET
    return (
        f"{megabytes(reading.rss_bytes)} of {megabytes(reading.limit_bytes)} ({reading.used:.0%}) · limit: "
        f"{LIMIT_SOURCES.get(reading.limit_source, reading.limit_source)} · "
        f"warning at {view.warn:.0%}, critical at {view.critical:.0%}"
    )


def eta_text(view: StagingView) -> str:
    """`2 min 10 s`, `done`, or `not known yet`."""
    return "done" if view.done else duration_text(view.eta_s)


def progress_markdown(view: StagingView) -> str:
    """The progress artifact's description: one labelled line per fact."""
    return "\n".join(
        [
            f"**Staging HOLD₁ → HOLD₂**, run `{view.run_id}`: {view.percent:.1f}% of the input read",
            "",
            f"- **Rows staged:** {view.rows_staged:,} ({view.rows_read:,} read, {view.rows_set_aside:,} quarantined "
            "or duplicates)",
            f"- **Rate:** {rate_text(view.rows_per_s)}",
            f"- **ETA:** {eta_text(view)}",
            f"- **Elapsed:** {duration_text(view.elapsed_s)}",
            f"- **Batch size:** {view.batch_size:,} rows (next batch: {view.next_batch:,})",
            f"- **Memory:** {memory_text(view)}",
        ]
    )


def window_line(before: StagingView, after: StagingView) -> str:
    """The log line for the batches between two views: rows, seconds, rows/s, then where the
    run stands (`staged batches 12-19: 400,000 rows in 10.2 s (39,215 rows/s); ...`)."""
    first, last = before.next_batch, after.next_batch - 1
    batches = f"batch {last:,}" if first >= last else f"batches {first:,}-{last:,}"
    rows, seconds = after.session_rows - before.session_rows, after.elapsed_s - before.elapsed_s
    memory = after.memory
    used = f"{megabytes(memory.rss_bytes)} of {megabytes(memory.limit_bytes)}" if memory else NOT_YET
    return (
        f"staged {batches}: {rows:,} rows in {seconds:.1f} s ({rate_text(rate(rows, seconds))}); "
        f"{after.rows_staged:,} staged, {after.percent:.1f}% of the input read, ETA {eta_text(after)}; "
        f"batch size {after.batch_size:,}; memory {used}"
    )


def bar_detail(view: StagingView) -> str:
    """The progress bar's text beside the bar: rows, rate, ETA, batch size, memory."""
    memory = view.memory
    used = f" · RSS {megabytes(memory.rss_bytes)} of {megabytes(memory.limit_bytes)}" if memory else ""
    return (
        f"{view.rows_staged:,} rows staged · {rate_text(view.rows_per_s)} · ETA {eta_text(view)} · "
        f"batch {view.next_batch:,} ({view.batch_size:,} rows){used}"
    )
