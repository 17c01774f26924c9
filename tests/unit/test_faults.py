"""Fault injection: BQHOLD_FAIL_AT=step[@batch] fails exactly there, and nowhere else."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.errors import ExitCode, exit_code_for
from bqhold.tasks.core.faults import FAIL_ENV, KILL_ENV, STEPS, InjectedFailure, reached


@pytest.fixture(autouse=True)
def no_faults(monkeypatch):
    monkeypatch.delenv(FAIL_ENV, raising=False)
    monkeypatch.delenv(KILL_ENV, raising=False)


def test_nothing_happens_when_unset():
    for step in STEPS:
        reached(step, 1)


def test_step_at_batch_fails_only_at_that_batch(monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "segment_renamed@3")

    for batch in (0, 1, 2, 4):
        reached("segment_renamed", batch)
    with pytest.raises(InjectedFailure, match="segment_renamed of batch 3"):
        reached("segment_renamed", 3)


def test_step_at_batch_does_not_fire_at_other_steps(monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "segment_renamed@3")

    for step in STEPS:
        if step != "segment_renamed":
            reached(step, 3)


def test_step_at_batch_does_not_fire_for_a_step_without_batch(monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "verified@0")

    reached("verified")


def test_step_alone_fails_at_any_batch(monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "verified")

    with pytest.raises(InjectedFailure):
        reached("verified")
    with pytest.raises(InjectedFailure):
        reached("verified", 12)


def test_setting_is_read_when_the_step_is_reached(monkeypatch):
    reached("batch_read", 1)

    monkeypatch.setenv(FAIL_ENV, "batch_read@1")

    with pytest.raises(InjectedFailure):
        reached("batch_read", 1)


def test_kill_setting_for_another_step_does_not_kill(monkeypatch):
    monkeypatch.setenv(KILL_ENV, "checkpoint_written@99")

    reached("checkpoint_written", 1)
    reached("batch_read", 99)


def test_an_injected_failure_ends_the_run_as_a_resumable_failure(monkeypatch):
    monkeypatch.setenv(FAIL_ENV, "ledger_committed@2")

    with pytest.raises(InjectedFailure) as info:
        reached("ledger_committed", 2)

    assert exit_code_for(info.value) == ExitCode.RESUMABLE
