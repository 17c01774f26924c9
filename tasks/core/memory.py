"""The memory guard: read the RSS and the limit that really applies, pick the next batch size.

`decide` is pure (tested with made-up readings); `read_memory` looks at the process and at
the cgroup limit a container imposes (Cloud Run and Kubernetes report the host's memory
through psutil, so a share of "system memory" would be wrong there).
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

_CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNLIMITED = 1 << 60


@dataclass(frozen=True)
class MemoryReading:
    """The memory in use (process RSS, or the cgroup's working set) and the limit it must stay under."""

    rss_bytes: int
    limit_bytes: int
    limit_source: str  # "explicit", "cgroup v2", "cgroup v1" or "machine"

    @property
    def used(self) -> float:
        """RSS as a fraction of the limit."""
        return self.rss_bytes / self.limit_bytes


@dataclass(frozen=True)
class MemoryPolicy:
    """Thresholds and bounds of the guard."""

    configured: int  # the batch size asked for: never exceeded
    minimum: int = 1_000
    warn: float = 0.80
    critical: float = 0.90
    grow_step: float = 0.25  # additive increase, as a share of `configured`
    # Memory a batch takes per byte of input while it is parsed, transformed and written: it sizes
    # the first batch (measured here: 50,000 events, 18 MB of JSON lines, peak 190-240 MB above
    # the footprint; at 8 the first batch under a 400 MB limit peaked at 397 MB).
    expansion: float = 12.0
    # Memory in use before the first batch (imports, the flow engine, HOLD₂ open), in the
    # readings' units: a batch's budget is what is left above it, up to the critical level.
    footprint: int = 0
    # Once a batch's peak is known, the guard grows only to this share of the size that peak says
    # fits, and only when that is `regrow` more than now: the next peaks stay below critical
    # despite noise, and the size settles instead of moving with every reading.
    settle: float = 0.90
    regrow: float = 0.10
    # The next batch is read while this one is written (two batches in memory at once: measured
    # +40-90 MB of peak on 50k-row batches) only below this share of the limit, at full size.
    read_ahead_below: float = 0.50

    @property
    def floor(self) -> int:
        """The smallest batch size the guard will use."""
        return min(self.minimum, self.configured)

    def budget(self, limit_bytes: int) -> float:
        """What a batch may add above the footprint: up to the critical level of `limit_bytes`."""
        return self.critical * limit_bytes - self.footprint


def critical_share(threshold_pct: float) -> float:
    """The critical level for a `--memory-threshold` (warning) in percent: 10 points above it."""
    return min(0.99, threshold_pct / 100 + 0.10)


@dataclass(frozen=True)
class LoadAllowance:
    """What the embedded warehouse may use while it loads: DuckDB's memory limit and threads."""

    memory_limit_mb: int
    threads: int


# DuckDB's RSS rises by about its memory_limit while it loads a group (measured on 100-200 MB
# groups of flattened JSON: limit + 5-8 MB with one thread, ~limit with two). More than the
# ceiling buys no speed; below the floor it cannot parse a group's JSON at all (48-56 MB fail).
WAREHOUSE_CEILING_MB = 192
WAREHOUSE_FLOOR_MB = 64
_WAREHOUSE_OVERSHOOT_MB = 8
PLENTIFUL = LoadAllowance(WAREHOUSE_CEILING_MB, 2)  # what a load gets when memory is no concern
# Parquet segments need none of the JSON reader's buffers, and the rise follows the limit all the
# same (5M rows: 192 MB -> +181 MB in 9.5 s, 96 MB -> +105 MB in 11.2 s, 64 MB -> +77 MB in 13.7 s).
PARQUET_LOAD_CEILING_MB = 96


def load_allowance(reading: MemoryReading, critical: float) -> LoadAllowance:
    """DuckDB's settings for a load that keeps the process below `critical` of its limit, given
    what it uses now; two threads only when there is room for the ceiling (they need more)."""
    room_mb = (critical * reading.limit_bytes - reading.rss_bytes) / 2**20 - _WAREHOUSE_OVERSHOOT_MB
    limit = int(max(WAREHOUSE_FLOOR_MB, min(WAREHOUSE_CEILING_MB, room_mb)))
    return PLENTIFUL if limit >= WAREHOUSE_CEILING_MB else LoadAllowance(limit, 1)


@dataclass(frozen=True)
class GuardDecision:
    """The next batch size and why; `collect` asks for a garbage collection first, `read_ahead`
    lets the batch after it be read while it is written."""

    size: int
    reason: str
    collect: bool = False
    read_ahead: bool = False


def _fits(policy: MemoryPolicy, decision: GuardDecision, reading: MemoryReading, bytes_per_row: float) -> GuardDecision:
    """Shrink the decision's batch if its estimated need would cross the critical level."""
    if bytes_per_row <= 0:
        return decision
    room = policy.critical * reading.limit_bytes - reading.rss_bytes
    need_per_row = bytes_per_row * policy.expansion
    if decision.size * need_per_row <= room:
        return decision
    size = max(policy.floor, int(max(room, 0) / need_per_row))
    if size >= decision.size:
        return decision
    reason = (
        f"a batch of {decision.size:,} rows needs ~{decision.size * need_per_row / 2**20:,.0f} MB, "
        f"{max(room, 0) / 2**20:,.0f} MB left below critical ({_critical_of(policy, reading)}): {size:,} rows"
    )
    return GuardDecision(size, reason, decision.collect)


@dataclass(frozen=True)
class BatchPeak:
    """The last staged batch as the guard learns from it: its rows and its peak memory (the
    readings' units)."""

    rows: int
    peak_bytes: int


def decide(
    policy: MemoryPolicy,
    current: int,
    reading: MemoryReading,
    bytes_per_row: float = 0.0,
    last: BatchPeak | None = None,
) -> GuardDecision:
    """The next batch size: from the `last` batch's peak once there is one, else from `reading`
    (halve above warn, floor above critical, else grow) and never more rows than fit below the
    critical level at `bytes_per_row` seen so far."""
    if last is not None and last.rows > 0:
        decision = _by_peak(policy, current, reading, last)
    else:
        decision = _fits(policy, _by_level(policy, current, reading), reading, bytes_per_row)
    return replace(decision, read_ahead=_room_to_read_ahead(policy, decision, reading))


def _room_to_read_ahead(policy: MemoryPolicy, decision: GuardDecision, reading: MemoryReading) -> bool:
    """Whether memory allows two batches at once: the size is the configured one, the guard
    leaves it as it is, and the process is well below the limit (else the extra peak would make
    the guard shrink the batches that read ahead saves time on)."""
    return not decision.reason and decision.size == policy.configured and reading.used < policy.read_ahead_below


def _by_peak(policy: MemoryPolicy, current: int, reading: MemoryReading, last: BatchPeak) -> GuardDecision:
    """Size the next batch so that its peak stays below critical, scaling the last batch's rise
    above the footprint to the budget. Memory a batch leaves behind (allocator caches) is reused
    by the next one, so only a peak, not the memory between batches, says a size does not fit:
    shrink when the last peak crossed critical, grow when it left room enough, else keep the size
    (what keeps the guard from oscillating)."""
    budget, rise = policy.budget(reading.limit_bytes), max(1, last.peak_bytes - policy.footprint)
    # The rows whose rise would reach the budget if a batch's rise grows with its rows; aiming
    # at `settle` of it leaves room for noise. (A rise that does not fall with the rows, such as
    # memory held from an earlier batch, still shrinks towards the floor, as it should.)
    aim = policy.settle * last.rows * budget / rise
    collect = reading.used >= policy.critical
    peaked = (
        f"the last batch of {last.rows:,} rows peaked at {last.peak_bytes / 2**20:,.0f} MB, "
        f"{rise / 2**20:,.0f} MB above the {policy.footprint / 2**20:,.0f} MB held before the first batch"
    )
    if rise > budget:
        size = max(policy.floor, min(current, int(aim)))
        return GuardDecision(size, f"{peaked}, over critical ({_critical_of(policy, reading)}): batch shrunk", True)
    grown = min(policy.configured, int(aim))
    if last.rows * 2 >= current and grown >= current * (1 + policy.regrow):
        return GuardDecision(grown, f"{peaked}, {budget / 2**20:,.0f} MB allowed: batch grows", collect)
    return GuardDecision(min(current, policy.configured), "", collect)


def _critical_of(policy: MemoryPolicy, reading: MemoryReading) -> str:
    """The critical level in words: its share and the limit it is a share of."""
    return f"{policy.critical:.0%} of {reading.limit_bytes / 2**20:,.0f} MB, {reading.limit_source}"


def _by_level(policy: MemoryPolicy, current: int, reading: MemoryReading) -> GuardDecision:
    used = reading.used
    share = (
        f"RSS {reading.rss_bytes / 2**20:,.0f} MB is {used:.0%} of "
        f"{reading.limit_bytes / 2**20:,.0f} MB ({reading.limit_source})"
    )
    if used >= policy.critical:
        return GuardDecision(
            policy.floor, f"{share}, above critical {policy.critical:.0%}: minimum batch", collect=True
        )
    if used >= policy.warn:
        size = max(policy.floor, current // 2)
        return GuardDecision(size, f"{share}, above warning {policy.warn:.0%}: batch halved")
    if current < policy.configured and used < policy.warn - 0.10:
        size = min(policy.configured, current + max(1, int(policy.configured * policy.grow_step)))
        return GuardDecision(size, f"{share}: comfortable, batch grows back")
    return GuardDecision(min(current, policy.configured), "")


@dataclass(frozen=True)
class CgroupMemory:
    """A cgroup's memory limit and working set (usage minus reclaimable page cache)."""

    limit_bytes: int
    working_set_bytes: int
    source: str


# (limit file, usage file, inactive page cache key in memory.stat) per cgroup version
_FILES = {
    "cgroup v2": ("memory.max", "memory.current", "inactive_file"),
    "cgroup v1": ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file"),
}


def _number(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() and int(text) < _UNLIMITED else None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key and value.strip().isdigit():
                return int(value)
    except OSError:
        pass
    return 0


def _tightest(mount: Path, path: str, source: str) -> CgroupMemory | None:
    """The tightest limit from this process's cgroup up to the root, with that group's working set."""
    limit_file, usage_file, inactive_key = _FILES[source]
    found: tuple[int, Path] | None = None
    directory = mount / path.lstrip("/")
    while True:
        limit = _number(directory / limit_file)
        if limit is not None and (found is None or limit < found[0]):
            found = (limit, directory)
        if directory == mount or mount not in directory.parents:
            break
        directory = directory.parent
    if found is None:
        return None
    limit, where = found
    usage = _number(where / usage_file) or 0
    working_set = max(0, usage - _stat(where / "memory.stat", inactive_key))
    return CgroupMemory(limit, working_set, source)


def cgroup_memory(proc_cgroup: str, root: Path = _CGROUP_ROOT) -> CgroupMemory | None:
    """The memory limit that applies to this process's cgroup, and that cgroup's working set.

    `proc_cgroup` is /proc/self/cgroup's text: in a container it names "/" (the container's
    own cgroup is mounted at the root); on a host it names a nested group, whose ancestors
    may limit it too. The working set, not this process's RSS, is what the OOM killer weighs
    (RSS also counts shared library pages charged elsewhere, and misses page cache).
    """
    for line in proc_cgroup.splitlines():
        hierarchy, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if hierarchy == "0" and not controllers:
            for mount in (root, root / "unified"):
                if (mount / "cgroup.controllers").exists():
                    found = _tightest(mount, path, "cgroup v2")
                    if found is not None:
                        return found
        elif "memory" in controllers.split(","):
            found = _tightest(root / "memory", path, "cgroup v1")
            if found is not None:
                return found
    return None


# glibc serves a block from the heap unless it is at least its mmap threshold, which starts at
# 128 KB and rises to the size of each mapped block freed, up to 32 MB. After a batch frees its
# 20-30 MB buffers, the next batch's buffers come from the heaps of whichever threads allocate
# them (pyarrow's parser threads, the read ahead, the segment writer: an arena each), and stay
# there as free fragments when freed: 100-120 MB of them at 5M rows (malloc_info). A fixed
# threshold maps each large block and unmaps it when freed, and two arenas leave fewer heaps to
# fragment (docs/design.md, invariant 8).
LARGE_BLOCK_BYTES = 4 * 2**20
HEAP_ARENAS = 2
# (mallopt's parameter number in malloc.h, its value, the variable and tunable a user sets it with)
_HEAP_SETTINGS = (
    (-3, LARGE_BLOCK_BYTES, "MALLOC_MMAP_THRESHOLD_", "mmap_threshold"),
    (-8, HEAP_ARENAS, "MALLOC_ARENA_MAX", "arena_max"),
)


@functools.cache
def _glibc() -> ctypes.CDLL | None:
    """The C library, if it is glibc (whose malloc the functions below tune); else None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None


def tune_heap(environ: Mapping[str, str] = os.environ) -> list[str]:
    """Have glibc map blocks of LARGE_BLOCK_BYTES and more (handed back when freed) and keep to
    HEAP_ARENAS arenas, each unless the user set it (its MALLOC_ variable or GLIBC_TUNABLES);
    the names of the settings made."""
    libc = _glibc()
    if libc is None:
        return []
    tunables = environ.get("GLIBC_TUNABLES", "")
    return [
        variable
        for parameter, value, variable, tunable in _HEAP_SETTINGS
        if variable not in environ and tunable not in tunables and libc.mallopt(parameter, value)
    ]


def release_free_memory() -> None:
    """Hand freed heap pages back to the system (glibc malloc_trim; elsewhere a no-op)."""
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


def peak_rss_bytes() -> int:
    """This process's highest RSS since it started: the kernel's VmHWM on Linux. Not getrusage's
    ru_maxrss, which Linux carries over exec: a run started by a larger process (a pytest or
    Prefect worker) would report its parent's RSS."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)


def peak_as_read(rows: int, peak_rss_bytes: int, reading: MemoryReading) -> BatchPeak:
    """A batch's peak RSS in `reading`'s units: a cgroup's working set also holds memory outside
    this process, which a batch leaves as it is."""
    return BatchPeak(rows, peak_rss_bytes + reading.rss_bytes - psutil.Process().memory_info().rss)


def read_memory(explicit_limit_mb: int | None = None) -> MemoryReading:
    """This process's RSS and the limit that applies: explicit, else cgroup, else the machine's."""
    rss = psutil.Process().memory_info().rss
    if explicit_limit_mb:
        return MemoryReading(rss, explicit_limit_mb * 2**20, "explicit")
    try:
        cgroup = cgroup_memory(Path("/proc/self/cgroup").read_text())
    except OSError:
        cgroup = None
    if cgroup is not None:
        return MemoryReading(cgroup.working_set_bytes, cgroup.limit_bytes, cgroup.source)
    return MemoryReading(rss, psutil.virtual_memory().total, "machine")
