"""The durable HOLD₂'s requests (tasks/warehouses/gcs_hold.py) against the Cloud Storage emulator
with GCS's generation preconditions and the real client: the journal fences a stale writer,
files replace a crashed attempt's, and every request survives a network that fails."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.journal import JournalEntry
from bqhold.tasks.core.lease import LeaseHolder
from bqhold.tasks.core.retry import RequestRetries, RetryTiming
from bqhold.tasks.warehouses.gcs_hold import GcsHold, open_gcs_hold
from tests.faultproxy import ALL_KINDS, FaultProxy

FAST = RequestRetries(25, RetryTiming(first_wait_s=0.01, request_timeout_s=2.0))


@pytest.fixture
def hold_url(gcs_bucket, gcs_emulator_env) -> str:
    return f"gs://{gcs_bucket.name}/hold"


def _open(url: str, name: str, ttl_s: float = 60.0, retries: RequestRetries = FAST) -> GcsHold:
    return open_gcs_hold(url, LeaseHolder(name, "host", 1), ttl_s, None, retries)


def _entry(seq: int, what: str) -> JournalEntry:
    return JournalEntry(seq, "set_phase", {"run_id": what})


def test_a_stale_writer_cannot_add_the_entry_its_successor_added(hold_url):
    stale = _open(hold_url, "run-1", ttl_s=1)
    stale.append(_entry(1, "first"))
    stale._closed.set()  # the first container froze: it renews no more
    time.sleep(1.5)

    taker = _open(hold_url, "run-2", ttl_s=1)
    assert [entry.args for entry in taker.entries_from(1)] == [{"run_id": "first"}]
    taker.append(_entry(2, "taker's"))

    with pytest.raises(StateError, match="another run wrote change 2 of this HOLD₂ meanwhile"):
        stale.append(_entry(2, "stale"))
    assert [entry.args["run_id"] for entry in taker.entries_from(1)] == ["first", "taker's"]
    taker.close()


def test_an_entry_written_again_after_its_answer_was_lost_is_the_same_entry(hold_url):
    hold = _open(hold_url, "run-1")
    entry = _entry(1, "once")
    hold.append(entry)
    hold.append(entry)  # the retry of a write whose answer was lost finds its own bytes

    assert [found.args for found in hold.entries_from(1)] == [{"run_id": "once"}]
    hold.close()


def test_a_file_a_crashed_attempt_left_is_replaced_and_a_missing_one_is_said(hold_url, gcs_bucket, tmp_path: Path):
    hold = _open(hold_url, "run-1")
    segment = tmp_path / "batch-000001.parquet"
    segment.write_bytes(b"crashed attempt")
    hold.put(segment, "runs/r1/segments/batch-000001.parquet")
    segment.write_bytes(b"the batch that committed")
    hold.put(segment, "runs/r1/segments/batch-000001.parquet")
    hold.put(segment, "runs/r1/segments/batch-000001.parquet")  # the same bytes: nothing to do

    copy = tmp_path / "copy" / "batch-000001.parquet"
    assert hold.fetch("runs/r1/segments/batch-000001.parquet", copy)
    assert copy.read_bytes() == b"the batch that committed"
    assert not hold.fetch("runs/r1/segments/batch-000002.parquet", tmp_path / "copy" / "batch-000002.parquet")
    assert not (tmp_path / "copy" / "batch-000002.parquet").exists()
    hold.delete(["runs/r1/segments/batch-000001.parquet", "runs/r1/segments/batch-000002.parquet"])
    assert [blob.name for blob in gcs_bucket.list_blobs(prefix="hold/runs/")] == []
    hold.close()
    assert [blob.name for blob in gcs_bucket.list_blobs(prefix="hold/")] == [], "the lease is released"


@pytest.fixture
def proxied(gcs_emulator, gcs_bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_emulator.endpoint, delay_s=2.5, seed=11) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        yield proxy


def test_thirty_percent_of_requests_faulted_every_entry_and_file_once(proxied, gcs_bucket, tmp_path: Path):
    proxied.configure(fault_rate=0.3, kinds=ALL_KINDS)
    hold = _open(f"gs://{gcs_bucket.name}/hold", "run-1")
    for seq in range(1, 21):
        hold.append(_entry(seq, f"change {seq}"))
        path = tmp_path / f"batch-{seq:06d}.jsonl"
        path.write_bytes(f"rows of batch {seq}\n".encode() * 100)
        hold.put(path, f"runs/r1/segments/{path.name}")
    found = [entry.args["run_id"] for entry in hold.entries_from(1)]
    hold.close()
    proxied.configure(fault_rate=0)

    assert found == [f"change {seq}" for seq in range(1, 21)]
    for seq in range(1, 21):
        blob = gcs_bucket.blob(f"hold/runs/r1/segments/batch-{seq:06d}.jsonl")
        assert blob.download_as_bytes() == f"rows of batch {seq}\n".encode() * 100
    faults = sum(count for kind, count in proxied.stats.items() if kind in ALL_KINDS)
    assert faults >= 0.2 * (faults + proxied.stats["forwarded"]), proxied.stats


def test_a_run_on_a_durable_hold_through_a_faulty_network_delivers_every_record_once(
    prefect_api, proxied, gcs_bucket, tmp_path: Path, retry_timing
):
    from bench.events import write as write_events
    from bqhold.flows.generic import generic_flow
    from tests.conftest import expected_records, warehouse_counts

    events = write_events(tmp_path / "events.jsonl", rows=20_000, bad_lines=True)
    ids, _ = expected_records(events)
    retry_timing(first_wait_s=0.01, request_timeout_s=2.0)
    proxied.configure(fault_rate=0.3, kinds=ALL_KINDS)
    summary = generic_flow(
        input=str(events),
        key="event_id",
        table="events",
        batch_size=2_000,
        hold_dir=str(tmp_path / "hold"),
        hold_url=f"gs://{gcs_bucket.name}/hold",
        warehouse=f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        max_retries=25,
    )
    proxied.configure(fault_rate=0)

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (len(ids), len(ids))
    assert proxied.stats["drop_response"] + proxied.stats["reset"] > 0, proxied.stats
