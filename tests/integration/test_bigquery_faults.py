"""Exactly once into BigQuery through a network that fails: the real flow, the real client, the
emulator, and a proxy in between that answers 429/500/503, resets connections, times out and
loses answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.events import write as write_events
from bqhold.flows.generic import generic_flow
from tests.bigquery_checks import counts, creates_load_job, load_jobs_of, warehouse_url
from tests.faultproxy import ALL_KINDS, FaultProxy

ROWS = 200_000


@pytest.fixture
def proxied(bigquery_emulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    """The flow's BigQuery client talks to the emulator through a fault proxy."""
    with FaultProxy(bigquery_emulator.endpoint, delay_s=2.5, seed=7) as proxy:
        monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", proxy.endpoint)
        yield proxy


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return write_events(tmp_path_factory.mktemp("faults") / "events.jsonl", rows=ROWS, duplicate_rate=0)


def test_thirty_percent_of_requests_faulted_still_exactly_once(
    prefect_api, tmp_path: Path, events: Path, proxied: FaultProxy, bigquery_client, bigquery_dataset, retry_timing
) -> None:
    retry_timing(first_wait_s=0.01, request_timeout_s=1.5)
    proxied.configure(fault_rate=0.3, kinds=ALL_KINDS)
    summary = generic_flow(
        input=str(events),
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
        max_retries=25,
    )
    proxied.configure(fault_rate=0)

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "events") == (ROWS, ROWS)
    faults = sum(count for kind, count in proxied.stats.items() if kind in ALL_KINDS)
    assert faults >= 0.2 * (faults + proxied.stats["forwarded"]), proxied.stats
    assert len({kind for kind, _, _ in proxied.injected}) >= 3, proxied.stats


def test_lost_answer_to_the_job_insert_reattaches_instead_of_loading_twice(
    prefect_api, tmp_path: Path, proxied: FaultProxy, bigquery_client, bigquery_dataset, retry_timing
) -> None:
    retry_timing(first_wait_s=0.01)
    data = tmp_path / "events.jsonl"
    data.write_text("".join(json.dumps({"event_id": f"e{i}", "n": i}) + "\n" for i in range(5000)))
    proxied.drop_next_response(creates_load_job)
    summary = generic_flow(
        input=str(data),
        warehouse=warehouse_url(bigquery_dataset),
        hold_dir=str(tmp_path / "hold"),
        run_id="lost-answer",
    )

    assert proxied.stats["drop_response"] == 1
    assert summary["verified"] is True
    assert counts(bigquery_client, bigquery_dataset, "events") == (5000, 5000)
    [job] = load_jobs_of(bigquery_client, "lost-answer")
    assert job.job_id == f"bqhold_lost-answer-b000000-000000_h{job.labels['bqhold_hold']}_d0_a0", (
        "the lost job was re-attached, not re-run"
    )
