"""BigQuery job ids follow from (run, batches, delivery, attempt), and only use allowed characters."""

from __future__ import annotations

import re

from tasks.core.load_plan import job_id_for, load_id_for


def test_job_id_is_deterministic_and_distinguishes_delivery_and_attempt():
    load_id = load_id_for("nightly.2026-11-22", 0, 19)
    ids = {job_id_for(load_id, delivery, attempt) for delivery in range(3) for attempt in range(3)}

    assert len(ids) == 9
    assert job_id_for(load_id, 1, 2) == job_id_for(load_id, 1, 2)
    assert all(re.fullmatch(r"[A-Za-z0-9_-]{1,1024}", job_id) for job_id in ids)
    assert job_id_for(load_id, 0, 0) == "bqhold_nightly_2026-11-22-b000000-000019_d0_a0"
