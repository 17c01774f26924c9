"""What a durable HOLD₂'s lease says, when it has run out, and what a refused run is told."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bqhold.tasks.core.lease import LeaseHolder, expired, in_use_message

RENEWED = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_lease_runs_out_only_after_its_ttl():
    assert not expired(RENEWED, 300, RENEWED + timedelta(seconds=300))
    assert expired(RENEWED, 300, RENEWED + timedelta(seconds=301))


def test_the_holder_round_trips_and_an_unreadable_lease_names_nobody():
    holder = LeaseHolder("generic-20261130T120000Z-ab12", "worker-7", 4242)

    assert LeaseHolder.from_bytes(holder.to_bytes()) == holder
    assert LeaseHolder.from_bytes(b"not json").run_id == "(unknown)"


def test_a_refused_run_is_told_who_holds_it_and_when_it_may_take_over():
    holder = LeaseHolder("r1", "worker-7", 4242)
    message = in_use_message("gs://b/hold", holder, RENEWED, 300, RENEWED + timedelta(seconds=120))

    assert "\n" not in message
    assert "gs://b/hold is in use by run r1 (host worker-7, pid 4242)" in message
    assert "renewed 120 s ago" in message and "expires in 180 s" in message
