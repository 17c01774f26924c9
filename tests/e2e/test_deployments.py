"""The deployment path, end to end: the REAL prefect.yaml deployed with `prefect deploy --all` to a
real `prefect server start` on 127.0.0.1, flow runs executed by a real `prefect worker start`,
and retried, cancelled and scheduled through the REST API the UI uses.

One server and one process worker serve the whole module (see tests/prefect_server.py; every
process they start is stopped at the end, whatever happens). Timings are printed at the end
(`pytest -s tests/e2e/test_deployments.py`).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import duckdb
import pytest
import yaml

from bench.events import write as write_events
from bqhold.flows._pipelines import all_flows, pipelines
from tests.conftest import distinct_event_ids, warehouse_counts
from tests.prefect_server import ROOT, PrefectServer

pytestmark = pytest.mark.slow

POOL = "bqhold-process"
CLOUD_POOL = "bqhold-cloud-run"
IMAGE = "registry.example/bqhold/bqhold:e2e"
FLOWS = tuple(entry.flow_name for entry in all_flows())  # the registry: flows/_pipelines.py
LOCAL, CLOUD = "self-hosted", "cloud-run"  # a deployment is named after its flow's file and its pool
TIMINGS: dict[str, float] = {}
# What the UI's "Retry" button sends for a failed flow run.
AWAITING_RETRY = {"type": "SCHEDULED", "name": "AwaitingRetry"}
# What the UI's "Cancel" button (and `prefect flow-run cancel`) sends.
CANCELLING = {"type": "CANCELLING", "name": "Cancelling"}


def timed(name: str, since: float) -> float:
    TIMINGS[name] = round(time.monotonic() - since, 2)
    return TIMINGS[name]


@pytest.fixture(scope="module")
def prefect(tmp_path_factory) -> Iterator[PrefectServer]:
    """The server, both work pools, every deployment of prefect.yaml, and a process worker."""
    started = time.monotonic()
    with PrefectServer(tmp_path_factory.mktemp("prefect-server")) as server:
        step = time.monotonic()
        server.cli("work-pool", "create", POOL, "--type", "process")
        # prefect-gcp ships the cloud-run-v2 worker's base job template: no Google call needed.
        server.cli("work-pool", "create", CLOUD_POOL, "--type", "cloud-run-v2")
        timed("create_pools_s", step)
        step = time.monotonic()
        server.deploy_output = server.cli("deploy", "--all", BQHOLD_IMAGE=IMAGE).stdout
        timed("deploy_all_s", step)
        # Started after the deploy, not during it: on SQLite, the polls of a starting worker and
        # the deploy's writes have been seen to lock each other for the 60 s busy timeout.
        server.start_worker(POOL, "bqhold-e2e")
        TIMINGS["setup_s"] = round(time.monotonic() - started, 2)
        try:
            yield server
        finally:
            TIMINGS.update(server.timings)
            TIMINGS["module_s"] = round(time.monotonic() - started, 2)
            print("\nbqhold e2e timings (s): " + json.dumps(TIMINGS, indent=1))


# --- HOLD₂ and warehouse, read after the run (read-only connections) -------------------------


def ledger_batches(hold: Path) -> list[tuple[str, int, int]]:
    """(run_id, batch, how many ledger rows) for every batch in HOLD₂'s ledger."""
    with duckdb.connect(str(hold / "hold.duckdb"), read_only=True) as con:
        return con.execute("SELECT run_id, batch, count(*) FROM ledger GROUP BY ALL ORDER BY run_id, batch").fetchall()


def checkpoints(hold: Path) -> dict[str, dict]:
    found = {}
    for path in (hold / "runs").glob("*/checkpoint.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # being replaced right now (atomic rename): read it next time
    return found


def assert_contiguous_once(hold: Path, run_id: str, batches: int) -> None:
    rows = [(batch, count) for rid, batch, count in ledger_batches(hold) if rid == run_id]
    assert rows == [(batch, 1) for batch in range(batches)], f"ledger of {run_id}: {rows}"


def params(workdir: Path, data: Path, **extra) -> dict:
    return {
        "input": str(data),
        "hold_dir": str(workdir / "hold"),
        "warehouse": f"duckdb://{workdir / 'warehouse.duckdb'}",
        "key": "event_id",
        **extra,
    }


def named(flow: str, pool: str) -> str:
    """The deployment of flow `bqhold-generic` on the `self-hosted` pool: `generic-self-hosted`."""
    return f"{flow.removeprefix('bqhold-')}-{pool}"


def deployment_of(prefect: PrefectServer, flow: str, pool: str) -> dict:
    return prefect.deployment(flow, named(flow, pool))


def latest_artifacts(prefect: PrefectServer, flow_run_id: str) -> dict[str, dict]:
    latest: dict[str, dict] = {}
    for artifact in sorted(prefect.artifacts(flow_run_id), key=lambda a: a["created"]):
        if artifact.get("key"):
            latest[artifact["key"]] = artifact
    return latest


def summary_of(hold: Path, run_id: str) -> dict:
    """The run's JSON summary in HOLD₂ (the machine keys; the artifact is their readable view)."""
    return json.loads((hold / "runs" / run_id / "summary.json").read_text())


def run_states(prefect: PrefectServer, deployment_id: str) -> list[tuple[str, str]]:
    return [(run["name"], run["state"]["name"]) for run in prefect.flow_runs_of(deployment_id)]


def wait_for_log(prefect: PrefectServer, flow_run_id: str, text: str, timeout: float = 20) -> None:
    prefect.wait_for(
        lambda: any(text in message for message in prefect.logs(flow_run_id)),
        timeout,
        lambda: f"no log line with {text!r}: {prefect.describe(flow_run_id)}",
        interval=0.5,
    )


# --- the deployments ------------------------------------------------------------------------


def test_deploy_all_creates_every_deployment_on_both_pools(prefect: PrefectServer) -> None:
    assert "Value for placeholder" not in prefect.deploy_output, prefect.deploy_output
    workdir = next(
        line.split()[1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("WORKDIR")
    )
    for flow in FLOWS:
        local = deployment_of(prefect, flow, LOCAL)
        cloud = deployment_of(prefect, flow, CLOUD)
        assert local["work_pool_name"] == POOL and cloud["work_pool_name"] == CLOUD_POOL
        # The worker runs the self-hosted flow runs in this checkout; the cloud ones in the image.
        assert local["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": str(ROOT)}}]
        assert cloud["pull_steps"] == [{"prefect.deployments.steps.set_working_directory": {"directory": workdir}}]
        for deployment in (local, cloud):
            assert deployment["job_variables"]["env"]["PREFECT_LOGGING_EXTRA_LOGGERS"] == "bqhold"
            assert deployment["global_concurrency_limit"]["limit"] == 1, flow
        # The model's pipeline runs the same image built with the models extra (Dockerfile, BQHOLD_EXTRAS).
        assert cloud["job_variables"]["image"] == (f"{IMAGE}-models" if flow == "bqhold-local_embeddings" else IMAGE)
        assert {"cpu", "memory", "timeout"} <= cloud["job_variables"].keys()
        assert cloud["parameters"]["staging_area"] == "bqhold-hold"  # a durable HOLD₂, in a bucket

    for flow in (entry.flow_name for entry in pipelines()):
        for pool in (LOCAL, CLOUD):
            (schedule,) = deployment_of(prefect, flow, pool)["schedules"]
            assert schedule["schedule"]["cron"] == "30 2 * * *" and schedule["active"] is False
    (weekly,) = deployment_of(prefect, "bqhold-cleanup", LOCAL)["schedules"]
    assert weekly["active"] is True and weekly["parameters"] == {"apply": False}
    for on_demand in (entry.flow_name for entry in all_flows() if not entry.scheduled):
        assert deployment_of(prefect, on_demand, LOCAL)["schedules"] == []
    # Every deployment has a name of its own: the UI's list of deployments tells them apart.
    names = [d["name"] for d in prefect.post("/deployments/filter", {"limit": 200})]
    assert len(names) == 2 * len(FLOWS) == len(set(names)), sorted(names)


def test_block_register_registers_both_block_types(prefect: PrefectServer) -> None:
    step = time.monotonic()
    done = prefect.cli("block", "register", "-m", "bqhold.blocks")
    timed("block_register_s", step)
    assert "bqhold BigQuery Target" in done.stdout and "bqhold Staging Area" in done.stdout, done.stdout
    target = prefect.get("/block_types/slug/bqhold-bigquery-target")
    area = prefect.get("/block_types/slug/bqhold-staging-area")
    schemas = prefect.post(
        "/block_schemas/filter", {"block_schemas": {"block_type_id": {"any_": [target["id"], area["id"]]}}}
    )
    fields = {schema["block_type_id"]: set(schema["fields"]["properties"]) for schema in schemas}
    assert {"project", "dataset", "table", "location", "gcp_credentials", "gcs_bucket"} <= fields[target["id"]]
    assert {"hold_dir", "batch_size", "memory_limit_mb"} <= fields[area["id"]]


# --- a: fail, retry from the UI, resume exactly once ---------------------------------------


def test_failed_run_retried_from_the_ui_resumes_without_redoing_batches(prefect: PrefectServer, tmp_path: Path) -> None:
    rows, batch_size = 3000, 500
    batches = math.ceil(rows / batch_size)
    data = write_events(tmp_path / "events.jsonl", rows=rows, duplicate_rate=0)
    marker = tmp_path / "failed-once"
    deployment = deployment_of(prefect, "bqhold-generic", LOCAL)
    submitted = time.monotonic()
    run = prefect.create_flow_run(
        deployment["id"],
        params(tmp_path, data, batch_size=batch_size),
        {"env": {"BQHOLD_FAIL_AT": "batch_transformed@2", "BQHOLD_FAIL_ONCE": str(marker)}},
    )
    run_id = run["id"]
    prefect.wait_for_state(run_id, lambda state: state["type"] in ("RUNNING", "FAILED"), 90, "RUNNING")
    timed("a_submit_to_running_s", submitted)
    failed = prefect.wait_for_terminal(run_id, "FAILED", timeout=120)
    timed("a_submit_to_failed_s", submitted)
    assert "injected failure at batch_transformed of batch 2" in failed["state"]["message"], prefect.describe(run_id)
    assert marker.exists()
    hold = tmp_path / "hold"
    ((bq_run, _, _), *_) = ledger_batches(hold)
    assert_contiguous_once(hold, bq_run, 2)  # batches 0 and 1 committed, 2 not

    retried = time.monotonic()
    answer = prefect.set_state(run_id, AWAITING_RETRY, force=True)
    assert answer["status"] == "ACCEPT", answer
    done = prefect.wait_for_terminal(run_id, "COMPLETED", timeout=120)
    timed("a_retry_to_completed_s", retried)

    assert done["id"] == run_id and done["run_count"] == 2  # the same flow run, its second attempt
    assert_contiguous_once(hold, bq_run, batches)
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (rows, rows)

    # Task runs are recorded from events, a moment after the flow run ends: wait for them.
    def stage_group_runs() -> list[tuple[int, str]] | None:
        found = sorted(
            (task["flow_run_run_count"], task["state"]["type"])
            for task in prefect.task_runs(run_id)
            if task["name"].startswith("stage-batches")
        )
        return found if (2, "COMPLETED") in found else None

    stages = prefect.wait_for(stage_group_runs, 30, lambda: f"stage-batches task runs: {prefect.task_runs(run_id)}")
    time.sleep(1)  # nothing more may arrive
    stages = stage_group_runs()
    # The six batches fit in one group (flows/_batch_loop.py GROUP_S) per attempt: attempt 1's
    # group committed batches 0 and 1 and failed in batch 2; attempt 2's staged 2.. only.
    assert stages == [(1, "FAILED"), (2, "COMPLETED")], stages

    wait_for_log(prefect, run_id, f"resuming run {bq_run} from batch 2")
    artifacts = prefect.wait_for(
        lambda: (
            (found := latest_artifacts(prefect, run_id)).keys() >= {"bqhold-progress", "bqhold-summary"}
            and "delivered" in found["bqhold-summary"]["description"]
            and found
        ),
        20,
        lambda: f"artifacts: {prefect.artifacts(run_id)}",
    )
    summary = summary_of(hold, bq_run)
    assert summary["status"] == "delivered" and summary["verified"] is True, summary
    assert summary["resumed_from_batch"] == 2 and summary["rows_loaded"] == rows, summary
    assert float(artifacts["bqhold-progress"]["data"]) == 100.0
    assert "**ETA:** done" in artifacts["bqhold-progress"]["description"]
    shown = artifacts["bqhold-summary"]["data"]
    assert f"| in the warehouse for this run | {rows:,} |" in shown and "this session from batch 2" in shown, shown
    # The retry updated the failed attempt's cards: one per key, none stale beside them.
    keys = sorted(artifact["key"] for artifact in prefect.artifacts(run_id) if artifact.get("key"))
    assert keys == ["bqhold-progress", "bqhold-summary"], keys


# --- c: cancel from the UI stops at a checkpoint; the next run resumes ---------------------


def test_cancel_from_the_ui_stops_at_a_checkpoint_and_the_next_run_resumes(
    prefect: PrefectServer, tmp_path: Path
) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=40_000)
    run_params = params(tmp_path, data, batch_size=1000)
    hold = tmp_path / "hold"
    deployment = deployment_of(prefect, "bqhold-generic", LOCAL)
    submitted = time.monotonic()
    run_id = prefect.create_flow_run(deployment["id"], run_params)["id"]
    prefect.wait_for(
        lambda: any(cp["next_batch"] >= 1 for cp in checkpoints(hold).values()),
        90,
        lambda: f"no batch committed: {prefect.describe(run_id)}",
        interval=0.05,
    )
    timed("c_submit_to_first_checkpoint_s", submitted)

    cancelled_at = time.monotonic()
    answer = prefect.set_state(run_id, CANCELLING)
    assert answer["status"] == "ACCEPT", answer
    cancelled = prefect.wait_for_terminal(run_id, "CANCELLED", timeout=60)
    timed("c_cancel_to_cancelled_s", cancelled_at)
    # The flow itself ended the run: SIGTERM reached bqhold's handler, which let the batch finish
    # and wrote the checkpoint (a killed process would not say so).
    message = cancelled["state"]["message"] or ""
    assert "stopped by SIGTERM" in message and "checkpoint is written" in message, prefect.describe(run_id)

    ((bq_run, checkpoint),) = checkpoints(hold).items()
    committed = checkpoint["next_batch"]
    assert checkpoint["phase"] == "staging" and not checkpoint["input_done"], checkpoint
    assert 1 <= committed < 40, checkpoint  # stopped mid-input, not after it
    assert_contiguous_once(hold, bq_run, committed)
    assert f"after batch {committed - 1} " in message, message
    # bqhold's message is the end of the story: no "unexpected exception" from Prefect's engine.
    wait_for_log(prefect, run_id, "Finished in state Cancelled")
    time.sleep(2)  # the process's last logs, sent as it exits
    assert not [line for line in prefect.logs(run_id) if "unexpected exception" in line or "Traceback" in line]

    resumed_at = time.monotonic()
    again = prefect.create_flow_run(deployment["id"], run_params)["id"]  # same job, same parameters
    prefect.wait_for_terminal(again, "COMPLETED", timeout=120)
    timed("c_resumed_run_s", resumed_at)
    wait_for_log(prefect, again, f"resuming run {bq_run} from batch {committed}")
    final = checkpoints(hold)[bq_run]
    assert final["input_done"] and final["phase"] == "delivered", final
    assert_contiguous_once(hold, bq_run, final["next_batch"])
    expected = distinct_event_ids(data)
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (expected, expected)


# --- b: schedules create runs, and a worker runs them ------------------------------------------


def test_schedules_create_runs_and_the_worker_runs_them(prefect: PrefectServer, tmp_path: Path) -> None:
    # The real weekly cleanup dry run is scheduled (Sundays 04:00 UTC, apply=false); the nightly
    # main jobs, inactive until they have real input, are not.
    cleanup = deployment_of(prefect, "bqhold-cleanup", LOCAL)
    upcoming = prefect.wait_for(
        lambda: [r for r in prefect.flow_runs_of(cleanup["id"]) if r["state"]["type"] == "SCHEDULED"],
        30,
        lambda: "the weekly cleanup has no scheduled runs",
    )
    for scheduled in upcoming:
        start = datetime.fromisoformat(scheduled["expected_start_time"].replace("Z", "+00:00"))
        assert (start.weekday(), start.hour, start.minute) == (6, 4, 0), start
        assert scheduled["parameters"]["apply"] is False
    for pool in (LOCAL, CLOUD):
        runs = prefect.flow_runs_of(deployment_of(prefect, "bqhold-generic", pool)["id"])
        assert not [r for r in runs if r["auto_scheduled"]], runs

    # A test-only copy of the real generic deployment (same entrypoint, build and pull steps) on
    # a cron every 5 seconds (croniter's sixth field is seconds).
    spec = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    (probe,) = [
        dict(d)
        for d in spec["deployments"]
        if d["entrypoint"].startswith("flows/generic.py") and d["name"] == named("bqhold-generic", LOCAL)
    ]
    data = write_events(tmp_path / "events.jsonl", rows=300)
    probe.update(
        name="schedule-probe",
        parameters=params(tmp_path, data),
        schedules=[{"cron": "* * * * * */5", "timezone": "UTC", "active": True}],
    )
    spec["deployments"] = [probe]
    spec.pop("definitions", None)
    probe_file = tmp_path / "prefect.yaml"
    probe_file.write_text(yaml.safe_dump(spec, sort_keys=False))
    step = time.monotonic()
    prefect.cli("deploy", "--prefect-file", str(probe_file), "--name", "bqhold-generic/schedule-probe")
    timed("b_deploy_probe_s", step)
    deployment = prefect.deployment("bqhold-generic", "schedule-probe")
    try:
        prefect.wait_for(
            lambda: len([r for r in prefect.flow_runs_of(deployment["id"]) if r["auto_scheduled"]]) >= 3,
            30,
            lambda: f"the scheduler made no runs: {prefect.flow_runs_of(deployment['id'])}",
        )
        timed("b_deploy_to_runs_scheduled_s", step)

        def completed() -> list[dict]:
            return sorted(
                (r for r in prefect.flow_runs_of(deployment["id"]) if r["state"]["type"] == "COMPLETED"),
                key=lambda r: r["expected_start_time"],
            )

        def two_completed() -> bool:
            runs = prefect.flow_runs_of(deployment["id"])
            for run in runs:
                assert run["state"]["type"] not in ("FAILED", "CRASHED"), prefect.describe(run["id"])
            return sum(run["state"]["type"] == "COMPLETED" for run in runs) >= 2

        prefect.wait_for(
            two_completed,
            90,
            lambda: f"fewer than 2 scheduled runs completed: {run_states(prefect, deployment['id'])}",
            interval=0.5,
        )
        timed("b_deploy_to_second_completed_s", step)
    finally:
        prefect.post(f"/deployments/{deployment['id']}/pause_deployment", {})

    first, second = completed()[:2]
    assert first["auto_scheduled"] and second["auto_scheduled"]
    # The next night's run of the same input delivers nothing twice.
    wait_for_log(prefect, second["id"], "already delivered")
    expected = distinct_event_ids(data)
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (expected, expected)


# --- last: deploying without an image (removes the cloud-run deployments of this module) -------


def test_deploy_all_without_bqhold_image_fails_in_one_line_and_creates_no_cloud_run_deployment(
    prefect: PrefectServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BQHOLD_IMAGE", raising=False)
    for flow in FLOWS:
        prefect.delete(f"/deployments/{deployment_of(prefect, flow, CLOUD)['id']}")

    refused = prefect.cli("deploy", "--all", check=False)
    output = refused.stdout + refused.stderr
    assert refused.returncode == 1, output
    assert "Traceback" not in output and "An exception occurred" not in output, output
    (line,) = [line for line in output.splitlines() if line.startswith("bqhold:")]
    assert "BQHOLD_IMAGE" in line and "--name '*-self-hosted'" in line, line
    cloud = prefect.post("/deployments/filter", {"work_pools": {"name": {"any_": [CLOUD_POOL]}}})
    assert cloud == [], [d["name"] for d in cloud]

    # The way out the line names: the self-hosted ones need no image.
    deployed = prefect.cli("deploy", "--name", "*-self-hosted")
    assert "could not be found" not in deployed.stdout, deployed.stdout
    for flow in FLOWS:
        assert deployment_of(prefect, flow, LOCAL)["work_pool_name"] == POOL
