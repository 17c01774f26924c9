"""BigQuery job ids follow from (hold, run, batches, delivery, attempt), and only use allowed characters."""

from __future__ import annotations

import re

from bqhold.tasks.core.load_plan import LoadGroup, job_id_for, load_id_for


def group(run_id: str = "nightly.2026-11-22", hold_id: str = "3fa29c1b7d0e") -> LoadGroup:
    return LoadGroup(run_id, load_id_for(run_id, 0, 19), tuple(range(20)), (), 100, hold_id)


def test_job_id_is_deterministic_and_distinguishes_delivery_and_attempt():
    ids = {job_id_for(group(), delivery, attempt) for delivery in range(3) for attempt in range(3)}

    assert len(ids) == 9
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", job_id) for job_id in ids)
    assert job_id_for(group(), 0, 0) == "bqhold_nightly_2026-11-22-b000000-000019_h3fa29c1b7d0e_d0_a0"


def test_the_same_run_id_in_two_hold_dirs_never_shares_a_job_id():
    assert job_id_for(group(hold_id="aaaaaaaaaaaa"), 0, 0) != job_id_for(group(hold_id="bbbbbbbbbbbb"), 0, 0)
