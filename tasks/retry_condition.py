"""Prefect-level retries decided by the same classification table as tenacity's (docs/design.md, invariant 7)."""

from __future__ import annotations

from typing import Any

from bqhold.tasks.core.errors import Interrupted
from bqhold.tasks.core.retry import is_transient

# Attempts and waits of a task retried by Prefect after its own (tenacity) retries gave up.
TASK_RETRIES = 2
TASK_RETRY_DELAYS_S = [5, 30]


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry a failed task only when its error is transient, and
    never after a stop signal (the user asked the run to end)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc) and not isinstance(exc, Interrupted)
    return False
