"""Light on the orchestrator (docs/design.md, invariant 12), against a real Prefect server: the
task runs and state changes of a flow run do not grow with its number of batches, while a stop
signal still ends staging after the current batch and a retried group redoes only the batch that
failed."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun

from bench.events import write as write_events
from bqhold.flows._batch_loop import GROUP_S, BatchLoop, staged_batches
from bqhold.flows.generic import generic_flow
from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.errors import Interrupted
from bqhold.tasks.core.faults import FAIL_ENV, FAIL_ONCE_ENV
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.metrics import MetricsRecorder, RssSampler
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.stop import StopRequest
from bqhold.tasks.stage import stage_batches
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_store import HoldStore

# What a run costs besides staging: plan-run, a load group or two, verify-run (docs/design.md, invariant 12).
OTHER_TASK_RUNS = 4
STATES_PER_TASK_RUN = 3  # Pending, Running, a final state


def task_runs(flow_run_id: UUID, timeout_s: float = 30.0) -> list[TaskRun]:
    """The flow run's task runs once they are all recorded (the server records them from events,
    a moment after the flow run ends) and final."""
    deadline, previous = time.monotonic() + timeout_s, None
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            found = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
            settled = [(run.id, run.state_type) for run in found]
            if found and all(run.state and run.state.is_final() for run in found) and settled == previous:
                return found
            previous = settled
            time.sleep(1.0)
    raise AssertionError(f"task runs of {flow_run_id} did not settle: {previous}")


def state_changes(runs: list[TaskRun]) -> int:
    """How many states the task runs went through, as the API recorded them."""
    with get_client(sync_client=True) as client:
        return sum(len(client.read_task_run_states(run.id)) for run in runs)


def test_two_hundred_batches_cost_a_few_task_runs(prefect_api: str, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=2000, duplicate_rate=0)
    state = generic_flow(
        input=str(data),
        key="event_id",
        batch_size=10,
        hold_dir=str(tmp_path / "hold"),
        warehouse=f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        return_state=True,
    )
    summary = state.result()
    assert summary["status"] == "delivered" and summary["rows_loaded"] == 2000 and summary["batches"] == 200

    runs = task_runs(state.state_details.flow_run_id)
    groups = [run for run in runs if run.name.startswith("stage-batches")]
    # One task run per GROUP_S of staging, however many batches fit in it (200 here).
    assert 1 <= len(groups) <= 1 + summary["stage_s"] / GROUP_S, [run.name for run in runs]
    assert len(runs) - len(groups) <= OTHER_TASK_RUNS, [run.name for run in runs]
    assert state_changes(runs) <= STATES_PER_TASK_RUN * len(runs)


@pytest.fixture
def batch_run(tmp_path: Path) -> Iterator[BatchRun]:
    """A run's context over 40 records staged 5 at a time (8 batches), on a real HOLD₂."""
    source = tmp_path / "events.jsonl"
    source.write_text("".join(json.dumps({"id": f"e{n}", "n": n}) + "\n" for n in range(40)))
    options = JobOptions(input=str(source), table="events", key="id", hold_dir=tmp_path / "hold", batch_size=5)
    with HoldStore(HoldLayout(options.hold_dir)) as store, RssSampler() as sampler:
        pipeline = Pipeline("identity", lambda frame: frame, "rows as read")
        yield BatchRun(
            store, pipeline, options, "r1", resolve_inputs(str(source)), "duckdb:///w", MetricsRecorder("r1", sampler)
        )


def staged_batch_numbers(run: BatchRun) -> list[int]:
    """The batches HOLD₂'s ledger holds for the run, in order."""
    return [entry.batch for entry in run.store.ledger(run.run_id)]


def test_a_stop_signal_ends_staging_after_the_current_batch_not_the_group(prefect_api: str, batch_run: BatchRun):
    @flow
    def stage_until_stopped() -> list[int]:
        stop, seen = StopRequest(), []
        with pytest.raises(Interrupted, match="stopped by SIGTERM after batch 2 of run r1"):
            for checkpoint, _ in staged_batches(batch_run, Checkpoint("r1", "fp"), stop):
                seen.append(checkpoint.next_batch)
                if checkpoint.next_batch == 3:
                    stop.handle(signal.SIGTERM, None)  # what the signal handler does
        return seen

    state = stage_until_stopped(return_state=True)
    assert state.result() == [1, 2, 3]  # well within one group's GROUP_S
    assert staged_batch_numbers(batch_run) == [0, 1, 2]
    assert checkpoints.load(batch_run.store.layout.checkpoint("r1")).next_batch == 3
    (group,) = task_runs(state.state_details.flow_run_id)
    assert group.name.startswith("stage-batches") and group.state.is_completed()  # a stop is not a failure


def test_a_retried_group_redoes_only_the_batch_that_failed(
    prefect_api: str, batch_run: BatchRun, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(FAIL_ENV, "batch_transformed@3")
    monkeypatch.setenv(FAIL_ONCE_ENV, str(tmp_path / "failed-once"))
    retried = stage_batches.with_options(retries=1, retry_delay_seconds=0)

    @flow
    def stage_all() -> list[int]:
        loop = BatchLoop(batch_run, Checkpoint("r1", "fp"))
        return [checkpoint.next_batch for checkpoint, _ in retried(loop.stage_next, lambda: loop.checkpoint.input_done)]

    state = stage_all(return_state=True)
    assert state.result() == [1, 2, 3, 4, 5, 6, 7, 8]  # batches 0-2 once, then 3 (failed once) to 7
    assert (tmp_path / "failed-once").exists()
    assert staged_batch_numbers(batch_run) == list(range(8))
    assert [entry.counters.rows_written for entry in batch_run.store.ledger("r1")] == [5] * 8
    (group,) = task_runs(state.state_details.flow_run_id)
    assert group.run_count == 2 and group.state.is_completed()
