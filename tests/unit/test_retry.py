"""Retry policies: transient errors are retried on an exact, observable schedule; others never."""

from __future__ import annotations

import errno

import pytest

from bqhold.tasks.core.errors import ConfigError, TransientError
from bqhold.tasks.core.retry import RetryPolicy


class Flaky:
    """Fails with `error` for the first `failures` calls, then returns 'done'."""

    def __init__(self, failures: int, error: BaseException) -> None:
        self.failures, self.error, self.calls = failures, error, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error
        return "done"


def run(policy: RetryPolicy, call: Flaky, waits: list[float]) -> str:
    for attempt in policy.retrying(sleep=waits.append):
        with attempt:
            return call()
    raise AssertionError("unreachable")


def test_transient_errors_are_retried_with_exponential_waits():
    waits: list[float] = []
    call = Flaky(3, ConnectionResetError(errno.ECONNRESET, "reset"))

    assert run(RetryPolicy(attempts=4, initial_s=1, max_wait_s=30, jitter_s=0), call, waits) == "done"

    assert call.calls == 4
    assert waits == [1, 2, 4]


def test_waits_are_capped_and_jitter_stays_within_its_bound():
    waits: list[float] = []
    call = Flaky(5, TimeoutError("slow"))

    run(RetryPolicy(attempts=6, initial_s=1, max_wait_s=5, jitter_s=0.5), call, waits)

    assert len(waits) == 5
    for wait, base in zip(waits, [1, 2, 4, 5, 5], strict=True):
        assert base <= wait <= min(5, base + 0.5)


def test_attempts_are_bounded_and_the_last_error_is_raised_as_is():
    waits: list[float] = []
    error = TransientError("still down")
    call = Flaky(10, error)

    with pytest.raises(TransientError) as raised:
        run(RetryPolicy(attempts=3, jitter_s=0), call, waits)

    assert raised.value is error and call.calls == 3 and len(waits) == 2


@pytest.mark.parametrize("error", [ConfigError("bad table"), ValueError("bug"), MemoryError()])
def test_permanent_data_and_resource_errors_are_never_retried(error):
    waits: list[float] = []
    call = Flaky(1, error)

    with pytest.raises(type(error)):
        run(RetryPolicy(attempts=5), call, waits)

    assert call.calls == 1 and waits == []


def test_max_retries_counts_retries_after_the_first_try():
    assert RetryPolicy.from_max_retries(3).attempts == 4
    assert RetryPolicy.from_max_retries(0).attempts == 1
