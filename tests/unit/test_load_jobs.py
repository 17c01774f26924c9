"""A load job found under one of a group's ids is checked to be its load."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tasks.core.load_jobs import JobSeen, not_this_groups

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
