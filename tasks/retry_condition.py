"""The task layer of tasks/core/retry.py in Prefect's terms: its counts and waits come from there,
its condition from the same classification table as every other layer (docs/design.md, invariant 7)."""

from __future__ import annotations

from typing import Any

from bqhold.tasks.core.errors import Interrupted
from bqhold.tasks.core.retry import PREFECT_TASK, is_transient


def retry_transient_only(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect's retry_condition_fn: retry a failed task only when its error is transient, and
    never after a stop signal (the user asked the run to end)."""
    try:
        state.result()
    except Exception as exc:
        return is_transient(exc) and not isinstance(exc, Interrupted)
    return False


# The settings of a task retried by Prefect after the layers inside it gave up: `@task(**TASK_RETRIES)`.
TASK_RETRIES: dict[str, Any] = {
    "retries": PREFECT_TASK.fixed_retries,  # the task layer does not follow --max-retries
    "retry_delay_seconds": list(PREFECT_TASK.delays_s),
    "retry_condition_fn": retry_transient_only,
}
