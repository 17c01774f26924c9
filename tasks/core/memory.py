"""The memory guard: read the RSS and the limit that really applies, pick the next batch size.

`decide` is pure (tested with made-up readings); `read_memory` looks at the process and at
the cgroup limit a container imposes (Cloud Run and Kubernetes report the host's memory
through psutil, so a share of "system memory" would be wrong there).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

_CGROUP_V2 = Path("/sys/fs/cgroup/memory.max")
_CGROUP_V1 = Path("/sys/fs/cgroup/memory/memory.limit_in_bytes")
_UNLIMITED_V1 = 1 << 60


@dataclass(frozen=True)
class MemoryReading:
    """The process's resident memory and the limit it must stay under."""

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
    # Memory a batch takes per byte of input while it is parsed, transformed and written
    # (measured here: ~17 MB of JSON lines peak at ~120-150 MB above the baseline).
    expansion: float = 8.0

    @property
    def floor(self) -> int:
        """The smallest batch size the guard will use."""
        return min(self.minimum, self.configured)


@dataclass(frozen=True)
class GuardDecision:
    """The next batch size and why; `collect` asks for a garbage collection first."""

    size: int
    reason: str
    collect: bool = False


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
        f"{max(room, 0) / 2**20:,.0f} MB left below critical: {size:,} rows"
    )
    return GuardDecision(size, reason, decision.collect)


def decide(policy: MemoryPolicy, current: int, reading: MemoryReading, bytes_per_row: float = 0.0) -> GuardDecision:
    """The next batch size for `reading`: halve above warn, floor above critical, else grow —
    and never more rows than fit below the critical level at `bytes_per_row` seen so far."""
    return _fits(policy, _by_level(policy, current, reading), reading, bytes_per_row)


def _by_level(policy: MemoryPolicy, current: int, reading: MemoryReading) -> GuardDecision:
    used = reading.used
    share = f"RSS {reading.rss_bytes / 2**20:,.0f} MB is {used:.0%} of {reading.limit_bytes / 2**20:,.0f} MB ({reading.limit_source})"
    if used >= policy.critical:
        return GuardDecision(policy.floor, f"{share}, above critical {policy.critical:.0%}: minimum batch", collect=True)
    if used >= policy.warn:
        size = max(policy.floor, current // 2)
        return GuardDecision(size, f"{share}, above warning {policy.warn:.0%}: batch halved")
    if current < policy.configured and used < policy.warn - 0.10:
        size = min(policy.configured, current + max(1, int(policy.configured * policy.grow_step)))
        return GuardDecision(size, f"{share}: comfortable, batch grows back")
    return GuardDecision(min(current, policy.configured), "")


def _cgroup_limit() -> tuple[int, str] | None:
    for path, source in ((_CGROUP_V2, "cgroup v2"), (_CGROUP_V1, "cgroup v1")):
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text == "max" or not text.isdigit() or int(text) >= _UNLIMITED_V1:
            return None
        return int(text), source
    return None


def read_memory(explicit_limit_mb: int | None = None) -> MemoryReading:
    """This process's RSS and the limit that applies: explicit, else cgroup, else the machine's."""
    rss = psutil.Process().memory_info().rss
    if explicit_limit_mb:
        return MemoryReading(rss, explicit_limit_mb * 2**20, "explicit")
    cgroup = _cgroup_limit()
    if cgroup is not None:
        return MemoryReading(rss, cgroup[0], cgroup[1])
    return MemoryReading(rss, psutil.virtual_memory().total, "machine")
