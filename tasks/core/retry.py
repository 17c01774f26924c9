"""Retry policies as objects: bounded attempts, exponential backoff with jitter, injectable sleep.

Only errors the classification table calls transient are retried (docs/design.md, invariant 7);
tests pass `sleep=waits.append` and assert the exact schedule without waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bqhold.tasks.core.errors import Category, classify


def is_transient(exc: BaseException) -> bool:
    """True for errors worth another attempt."""
    return classify(exc) is Category.TRANSIENT


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 4  # total tries, the first included
    initial_s: float = 1.0
    max_wait_s: float = 30.0
    jitter_s: float = 1.0

    @classmethod
    def from_max_retries(cls, max_retries: int, initial_s: float = 1.0) -> RetryPolicy:
        """The policy for `--max-retries N` (N retries after the first try)."""
        return cls(attempts=max_retries + 1, initial_s=initial_s, jitter_s=initial_s)

    def retrying(
        self,
        should_retry: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """A tenacity Retrying for this policy; the last error is re-raised as is."""
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.initial_s, max=self.max_wait_s, jitter=self.jitter_s),
            retry=retry_if_exception(should_retry),
            sleep=sleep,
            before_sleep=on_retry,
            reraise=True,
        )
