"""One writer at a time on a durable HOLD₂ prefix, against the Cloud Storage emulator with
GCS's generation preconditions (tests/emulator/gcs_preconditions.py) and the real client."""

from __future__ import annotations

import time

import pytest

from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.lease import LeaseHolder
from bqhold.tasks.warehouses.gcs_lease import GcsLease

FIRST, SECOND = LeaseHolder("run-1", "host-a", 11), LeaseHolder("run-2", "host-b", 22)


def test_a_second_run_on_the_prefix_is_refused_with_who_holds_it(gcs_bucket):
    GcsLease(gcs_bucket, "hold/", FIRST).acquire()

    with pytest.raises(StateError) as refused:
        GcsLease(gcs_bucket, "hold/", SECOND).acquire()

    assert str(refused.value).startswith(f"gs://{gcs_bucket.name}/hold is in use by run run-1 (host host-a, pid 11)")
    GcsLease(gcs_bucket, "other", SECOND).acquire()  # another prefix is another hold


def test_a_released_lease_is_taken_at_once(gcs_bucket):
    first = GcsLease(gcs_bucket, "hold", FIRST)
    first.acquire()
    first.renew()
    first.release()

    GcsLease(gcs_bucket, "hold", SECOND).acquire()


def test_a_dead_runs_lease_expires_and_the_stale_run_is_fenced(gcs_bucket):
    stale = GcsLease(gcs_bucket, "hold", FIRST, ttl_s=1)
    stale.acquire()
    time.sleep(1.5)  # the first run stopped renewing

    taker = GcsLease(gcs_bucket, "hold", SECOND, ttl_s=1)
    taker.acquire()

    with pytest.raises(StateError, match="taken over by another run"):
        stale.renew()
    stale.release()  # not its lease any more: left alone
    taker.renew()
    assert gcs_bucket.blob("hold/lease.json").download_as_bytes() == SECOND.to_bytes()
