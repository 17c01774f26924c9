"""Per-stage metrics of a run: duration, rows, and RSS before, after and at peak.

A background sampler reads the process RSS every few milliseconds, so a stage's peak is seen
even when memory is back down by the time the stage ends. Records are plain values; HOLD₂
stores them in `pipeline_metrics` (see tasks/storage/hold_store.py for the views).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psutil

_MB = 2**20


@dataclass(frozen=True)
class StageMetric:
    """One stage of one batch (or of the load), as measured."""

    run_id: str
    batch: int | None
    stage: str  # read | transform | write | checkpoint | load | verify
    started_at: float  # epoch seconds
    duration_s: float
    rows: int
    rss_before_mb: float
    rss_after_mb: float
    rss_peak_mb: float
    batch_size: int
    decision: str  # the memory guard's reason, if it changed the batch size


class RssSampler:
    """Samples this process's RSS on a daemon thread; `peak_since(mark)` reads the maximum."""

    def __init__(self, interval_s: float = 0.005) -> None:
        self._process = psutil.Process()
        self._interval = interval_s
        self._lock = threading.Lock()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bqhold-rss-sampler", daemon=True)

    def now(self) -> int:
        """The current RSS in bytes."""
        return self._process.memory_info().rss

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            rss = self.now()
            with self._lock:
                self._peak = max(self._peak, rss)

    def reset(self) -> int:
        """Start a new peak window; return the RSS now."""
        rss = self.now()
        with self._lock:
            self._peak = rss
        return rss

    def peak(self) -> int:
        """The highest RSS seen since the last reset (including now)."""
        rss = self.now()
        with self._lock:
            self._peak = max(self._peak, rss)
            return self._peak

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=1)


@dataclass
class StageCounter:
    """What a stage reports about itself while it runs."""

    rows: int = 0
    label: str = ""  # how the stage ran, when it can run two ways: recorded as `stage:label` (`read:fast`)


@dataclass
class StageTimings:
    """The stages of one step as measured: the step's own collector, handed back in its result."""

    sampler: RssSampler
    run_id: str
    batch: int | None
    batch_size: int = 0
    decision: str = ""  # the memory guard's reason, if it changed the batch size
    records: list[StageMetric] = field(default_factory=list)

    @contextmanager
    def stage(self, name: str) -> Iterator[StageCounter]:
        """Measure the block as stage `name`."""
        counter = StageCounter()
        started_at, started = time.time(), time.perf_counter()
        before = self.sampler.reset()
        try:
            yield counter
        finally:
            self.records.append(
                StageMetric(
                    run_id=self.run_id,
                    batch=self.batch,
                    stage=f"{name}:{counter.label}" if counter.label else name,
                    started_at=started_at,
                    duration_s=time.perf_counter() - started,
                    rows=counter.rows,
                    rss_before_mb=before / _MB,
                    rss_after_mb=self.sampler.now() / _MB,
                    rss_peak_mb=self.sampler.peak() / _MB,
                    batch_size=self.batch_size,
                    decision=self.decision,
                )
            )


@dataclass(frozen=True)
class MetricsRecorder:
    """Measures the stages of one run against one RSS sampler; each step gets its own timings."""

    run_id: str
    sampler: RssSampler

    def timings(self, batch: int | None, batch_size: int, decision: str = "") -> StageTimings:
        """A fresh collector for the stages of `batch` (None: the run's load and verify) at `batch_size`."""
        return StageTimings(self.sampler, self.run_id, batch, batch_size, decision)
