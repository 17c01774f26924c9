"""A flow run executed as a worker executes it (`python -m prefect.engine FLOW_RUN_ID`, against
the session's real Prefect server): a failure bqhold explained ends with its one line, not with
Prefect's "Engine execution exited with unexpected exception" and a traceback; an unexpected
error keeps both (flows/_logging.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
from prefect.client.schemas.objects import FlowRun

from bqhold.flows.generic import generic_flow
from bqhold.tasks.core.faults import FAIL_ENV
from tests.conftest import ROOT

ENGINE_LINE = "Engine execution exited with unexpected exception"


def run_like_a_worker(tmp_path: Path, parameters: dict, **env: str) -> tuple[FlowRun, str]:
    """Create a flow run of the generic flow and execute it in a subprocess as a process worker
    does; return the ended flow run and everything it logged (the API's copy and its output)."""
    with get_client(sync_client=True) as client:
        created = client.create_flow_run(generic_flow, parameters=parameters)
    done = subprocess.run(
        [sys.executable, "-m", "prefect.engine", str(created.id)],
        cwd=ROOT,
        env={**os.environ, "PREFECT__FLOW_ENTRYPOINT": "flows/generic.py:generic_flow", **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    deadline = time.monotonic() + 20
    with get_client(sync_client=True) as client:
        while True:  # logs reach the API in batches, the last one as the process exits
            ended = client.read_flow_run(created.id)
            logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[created.id])))
            messages = "\n".join(log.message for log in logs)
            if "Finished in state" in messages or time.monotonic() > deadline:
                return ended, f"{messages}\n--- output:\n{done.stdout}\n{done.stderr}"
            time.sleep(0.5)


def params(tmp_path: Path, source: Path) -> dict:
    return {
        "input": str(source),
        "hold_dir": str(tmp_path / "hold"),
        "warehouse": f"duckdb://{tmp_path / 'warehouse.duckdb'}",
    }


def test_a_failure_bqhold_explained_ends_in_its_one_line(prefect_api: str, tmp_path: Path) -> None:
    ended, logged = run_like_a_worker(tmp_path, params(tmp_path, tmp_path / "missing.jsonl"))
    assert ended.state.is_failed(), logged
    assert "missing.jsonl" in ended.state.message, ended.state.message
    assert ENGINE_LINE not in logged and "Traceback" not in logged, logged


def test_an_unexpected_error_keeps_the_engines_line_and_its_traceback(prefect_api: str, tmp_path: Path) -> None:
    source = tmp_path / "events.jsonl"
    source.write_text('{"id": 1}\n')
    ended, logged = run_like_a_worker(tmp_path, params(tmp_path, source), **{FAIL_ENV: "batch_read"})
    assert ended.state.is_failed(), logged
    assert ENGINE_LINE in logged and "Traceback" in logged and "InjectedFailure" in logged, logged
