"""Prefect task: the memory guard that runs before every batch (docs/design.md, invariant 8)."""

from __future__ import annotations

import gc

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from bqhold.tasks.core.memory import GuardDecision, MemoryPolicy, decide, read_memory, release_free_memory


@task(name="guard-memory", cache_policy=NO_CACHE)
def guard_memory(
    policy: MemoryPolicy, current: int, explicit_limit_mb: int | None, bytes_per_row: float = 0.0
) -> GuardDecision:
    """Read memory and pick the next batch size; collect garbage only when critical."""
    decision = decide(policy, current, read_memory(explicit_limit_mb), bytes_per_row)
    if decision.collect:
        gc.collect()
        release_free_memory()
    if decision.size != current:
        get_run_logger().warning("batch size %s -> %s: %s", f"{current:,}", f"{decision.size:,}", decision.reason)
    return decision
