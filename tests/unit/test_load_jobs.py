"""A load job found under one of a group's ids is checked to be its load; what follows a job
depends on how it ended and on who submitted it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bqhold.tasks.core.load_jobs import JobSeen, Step, after, not_this_groups

DESTINATION = "p.d.things"
OURS = JobSeen("bqhold_r-b000000-000000_habc_d0_a0", DESTINATION, "abc", done=True, output_rows=30)


def test_a_finished_job_of_this_group_is_its_load():
    assert not_this_groups(OURS, DESTINATION, "abc", rows=30) is None


@pytest.mark.parametrize(
    ("job", "why"),
    [
        (replace(OURS, destination="p.d.other"), "it loads into p.d.other, not p.d.things"),
        (replace(OURS, hold_label="xyz"), "its bqhold_hold label is 'xyz', not this hold dir's 'abc'"),
        (replace(OURS, hold_label=None), "label is None"),
        (replace(OURS, output_rows=29), "it loaded 29 rows, the group has 30"),
    ],
)
def test_a_job_of_another_table_hold_dir_or_size_is_not_this_groups(job: JobSeen, why: str):
    assert why in not_this_groups(job, DESTINATION, "abc", rows=30)


def test_rows_are_only_compared_once_a_job_succeeded():
    running = replace(OURS, done=False, output_rows=None)
    failed = replace(OURS, error_reason="invalid", output_rows=0)

    assert not_this_groups(running, DESTINATION, "abc", rows=30) is None
    assert not_this_groups(failed, DESTINATION, "abc", rows=30) is None


def test_a_succeeded_job_is_used_whoever_submitted_it():
    assert after(OURS, submitted_here=True) is Step.USE
    assert after(OURS, submitted_here=False) is Step.USE


@pytest.mark.parametrize("reason", ["invalid", "backendError", "stopped", "accessDenied"])
def test_a_job_that_failed_in_an_earlier_process_is_a_spent_attempt(reason: str):
    assert after(replace(OURS, error_reason=reason), submitted_here=False) is Step.NEXT_ATTEMPT


def test_a_job_this_process_submitted_is_retried_when_transient_or_cancelled():
    assert after(replace(OURS, error_reason="backendError"), submitted_here=True) is Step.NEXT_ATTEMPT
    assert after(replace(OURS, error_reason="stopped"), submitted_here=True) is Step.NEXT_ATTEMPT


def test_a_permanent_failure_in_this_process_stops_the_run():
    assert after(replace(OURS, error_reason="invalid"), submitted_here=True) is Step.REJECTED


def test_a_job_that_never_finished_is_stuck():
    assert after(replace(OURS, done=False), submitted_here=True) is Step.STUCK
    assert after(replace(OURS, done=False), submitted_here=False) is Step.STUCK
