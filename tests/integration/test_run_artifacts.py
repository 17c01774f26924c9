"""What a run shows in the Prefect UI, under the real engine and server (prefect_test_harness):
the progress artifact's description (rows, rate, ETA, elapsed, batch size, memory), the summary
as labelled markdown, one log line per view of the batches, and a retried flow run that updates
its cards instead of adding stale ones."""

from __future__ import annotations

import time
from pathlib import Path
from uuid import UUID

from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import Artifact

from bench.events import write as write_events
from bqhold.flows._artifacts import PROGRESS_KEY, SUMMARY_KEY, publish_summary, start_progress, update_progress
from bqhold.flows.generic import generic_flow
from bqhold.tasks.core.checkpoint import Checkpoint, Counters
from bqhold.tasks.core.progress import staging_view
from bqhold.tasks.core.summary import RunSummary


def artifacts_of(flow_run_id: UUID) -> list[Artifact]:
    with get_client(sync_client=True) as client:
        return client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )


def log_messages(flow_run_id: UUID, wanted: str, timeout_s: float = 20.0) -> list[str]:
    """The flow run's log messages once one holds `wanted` (logs reach the API in batches)."""
    deadline, messages = time.monotonic() + timeout_s, []
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])))
            messages = [log.message for log in logs]
            if any(wanted in message for message in messages):
                return messages
            time.sleep(0.5)
    raise AssertionError(f"no log line with {wanted!r}: {messages}")


def test_a_run_shows_its_pace_and_a_summary_a_person_reads(prefect_api: str, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=2000, duplicate_rate=0)
    state = generic_flow(
        input=str(data),
        key="event_id",
        batch_size=500,
        hold_dir=str(tmp_path / "hold"),
        warehouse=f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        return_state=True,
    )
    summary = state.result()
    assert summary["status"] == "delivered" and summary["rows_loaded"] == 2000  # the machine keys, unchanged
    flow_run_id = state.state_details.flow_run_id

    cards = {artifact.key: artifact for artifact in artifacts_of(flow_run_id)}
    assert cards.keys() == {PROGRESS_KEY, SUMMARY_KEY}
    progress = cards[PROGRESS_KEY]
    assert float(progress.data) == 100.0
    for shown in ("**Rows staged:** 2,000 (2,000 read", "**Rate:** ", " rows/s", "**ETA:** done", "**Elapsed:** "):
        assert shown in progress.description, progress.description
    assert "**Batch size:** 500 rows (next batch: 4)" in progress.description
    assert " MB of " in progress.description and "warning at 80%, critical at 90%" in progress.description

    markdown = cards[SUMMARY_KEY].data
    assert markdown.startswith(f"## bqhold run `{summary['run_id']}`: delivered and verified"), markdown
    for row in ("| staged into HOLD₂ | 2,000 |", "| verified against HOLD₂'s ledger | yes |", "### Time and memory"):
        assert row in markdown, markdown
    assert f"| HOLD₂ | `{summary['hold_dir']}` |" in markdown and "### Next" in markdown
    assert "None" not in markdown and "True" not in markdown

    # The first batch is shown at once, the rest (well within 10 s) when staging ends.
    messages = log_messages(flow_run_id, "staged batches 1-3: 1,500 rows in ")
    (first,) = [message for message in messages if message.startswith("staged batch 0: 500 rows in ")]
    assert "rows/s" in first and "memory " in first and " MB of " in first, first


def a_view(rows: int, done: bool):
    checkpoint = Checkpoint("r1", "fp", rows // 10, counters=Counters(rows, rows), batch_size=10, input_done=done)
    return staging_view(checkpoint, rows / 10, Checkpoint("r1", "fp"), 0.0, 1.0, None, 0.8, 0.9)


def a_summary(status: str) -> RunSummary:
    counts = dict(rows_read=1000, rows_written=1000, rows_quarantined=0, duplicates_skipped=0, rows_loaded=1000)
    return RunSummary(
        "r1",
        status,
        "generic",
        "events",
        "duckdb://w",
        **counts,
        verified=status == "delivered",
        batches=2,
        final_batch_size=10,
        resumed_from_batch=None,
        peak_rss_mb=1.0,
        duration_s=1.0,
        hold_dir="/h",
        quarantine_dir=None,
        message="",
    )


def test_a_retried_flow_run_updates_its_cards_instead_of_adding_stale_ones(prefect_api: str) -> None:
    attempts: list[UUID | None] = []

    @flow(retries=1, retry_delay_seconds=0)
    def shows_then_fails_once() -> None:
        done = bool(attempts)
        progress = start_progress(a_view(0, False))
        attempts.append(progress)
        update_progress(progress, a_view(1000 if done else 400, done))
        publish_summary(a_summary("delivered" if done else "failed"))
        if not done:
            raise RuntimeError("the first attempt fails")

    state = shows_then_fails_once(return_state=True)
    assert state.is_completed() and len(attempts) == 2
    assert attempts[0] == attempts[1] is not None  # the second attempt took the first one's card over

    cards = artifacts_of(state.state_details.flow_run_id)
    keyed = [artifact for artifact in cards if artifact.key]  # not the failed attempt's persisted result
    assert sorted(artifact.key for artifact in keyed) == [PROGRESS_KEY, SUMMARY_KEY]  # one card per key
    by_key = {artifact.key: artifact for artifact in keyed}
    assert float(by_key[PROGRESS_KEY].data) == 100.0 and "**ETA:** done" in by_key[PROGRESS_KEY].description
    summary = by_key[SUMMARY_KEY]
    assert "delivered and verified" in summary.data and summary.description.endswith(": delivered")
