"""Prefect retries a task only when the classification table calls its error transient."""

from __future__ import annotations

import pytest
from prefect import flow, task

from bqhold.tasks.core.errors import (
    ConfigError,
    DataErrorRateExceeded,
    Interrupted,
    LoadJobStuck,
    WarehouseUnavailable,
)
from bqhold.tasks.retry_condition import retry_transient_only


def flaky_flow(error: Exception, failures: int) -> tuple[object, int]:
    calls = []

    @task(retries=3, retry_delay_seconds=0, retry_condition_fn=retry_transient_only)
    def attempt() -> str:
        calls.append(1)
        if len(calls) <= failures:
            raise error
        return "loaded"

    @flow
    def run() -> str:
        return attempt()

    return run(return_state=True), len(calls)


def test_transient_errors_are_retried_by_prefect(prefect_api: str) -> None:
    state, calls = flaky_flow(WarehouseUnavailable("BigQuery 503"), failures=2)
    assert state.is_completed() and state.result() == "loaded"
    assert calls == 3


@pytest.mark.parametrize(
    "error",
    [
        ConfigError("no such dataset"),
        DataErrorRateExceeded("20% bad"),
        ValueError("a bug"),
        Interrupted("stopped by SIGTERM while waiting for a load job", 143),
        LoadJobStuck("load job still RUNNING after it was cancelled"),
    ],
)
def test_permanent_data_and_unknown_errors_are_not(prefect_api: str, error: Exception) -> None:
    state, calls = flaky_flow(error, failures=1)
    assert state.is_failed()
    assert calls == 1
