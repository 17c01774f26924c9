"""A real `prefect server start` on 127.0.0.1 and `prefect worker start` processes, for tests.

    with PrefectServer(tmp_path / "prefect-home") as server:
        server.cli("work-pool", "create", "pool", "--type", "process")
        worker = server.start_worker("pool")
        run = server.post("/deployments/<id>/create_flow_run", {...})

Every process is started in its own session, dies with the test process (PR_SET_PDEATHSIG), and
is stopped on exit together with everything it spawned (a worker's flow-run subprocesses too),
whatever the outcome. The server and the CLIs get a private PREFECT_HOME and never see the
session's `prefect_test_harness` settings. The API is used over plain HTTP, as the UI does.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil

from bqhold.flows._local_server import die_with_parent, free_port

ROOT = Path(__file__).resolve().parent.parent
PREFECT = str(Path(sys.executable).with_name("prefect"))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "CRASHED"}
RETRY_CODES = {429, 502, 503}


def _tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def stop_process_tree(process: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM a process and all its descendants, then SIGKILL whatever is left."""
    if process.poll() is not None:
        return
    try:
        family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        family = []
    for member in family:
        try:
            member.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(family, timeout=timeout)
    for member in alive:
        try:
            member.kill()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(alive, timeout=5)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


class Worker:
    """A running `prefect worker start` process and its log."""

    def __init__(self, process: subprocess.Popen, name: str, pool: str, log: Path) -> None:
        self.process, self.name, self.pool, self.log = process, name, pool, log
        self.started = time.monotonic()

    def output(self, lines: int = 60) -> str:
        """The last lines the worker (and the flow runs it started) printed."""
        return _tail(self.log, lines)


class PrefectServer:
    """`prefect server start` with its own PREFECT_HOME; workers and CLI calls against it."""

    def __init__(
        self, home: Path, *, env: dict[str, str] | None = None, startup_timeout: float = 120, ui: bool = False
    ) -> None:
        """`ui`: serve Prefect's web UI too, at `url` (its pages call this server's API)."""
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.api_url = f"{self.url}/api"
        self.startup_timeout = startup_timeout
        self.ui = ui
        # Without PREFECT_UI_API_URL the UI's pages call the API at port 4200.
        shown = {"PREFECT_UI_ENABLED": "true", "PREFECT_SERVER_UI_ENABLED": "true", "PREFECT_UI_API_URL": self.api_url}
        self.extra_env = {**(shown if ui else {}), **(env or {})}
        self.process: subprocess.Popen | None = None
        self.workers: list[Worker] = []
        self.timings: dict[str, float] = {}
        self.http = httpx.Client(base_url=self.api_url, timeout=30)

    # --- processes -------------------------------------------------------------------------

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of everything that talks to this server."""
        base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
        return {
            **base,
            "PREFECT_HOME": str(self.home),
            "PREFECT_API_URL": self.api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_ENABLED": "false",
            "PREFECT_SERVER_UI_ENABLED": "false",
            "PREFECT_CLI_COLORS": "false",
            "PREFECT_CLI_WRAP_LINES": "false",
            "COLUMNS": "200",
            **self.extra_env,
            **extra,
        }

    def _spawn(self, command: list[str], log: Path, env: dict[str, str], cwd: Path = ROOT) -> subprocess.Popen:
        with open(log, "ab") as handle:  # the child keeps its own copy of the descriptor
            return subprocess.Popen(
                command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def start(self) -> PrefectServer:
        """Start the server and wait until it answers its health check."""
        self.home.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        command = [
            PREFECT,
            "server",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *(() if self.ui else ("--no-ui",)),
            "--analytics-off",
        ]
        self.process = self._spawn(command, self.home / "server.log", self.env())
        deadline = started + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"prefect server exited with {self.process.returncode}:\n{_tail(self.home / 'server.log')}"
                )
            try:
                if self.http.get("/health", timeout=1).status_code == 200:
                    self.timings["server_start_s"] = round(time.monotonic() - started, 2)
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(
            f"prefect server did not answer within {self.startup_timeout:.0f}s:\n{_tail(self.home / 'server.log')}"
        )

    def cli(
        self, *args: str, cwd: Path = ROOT, timeout: float = 180, check: bool = True, **env: str
    ) -> subprocess.CompletedProcess:
        """Run `prefect --no-prompt ARGS` against this server."""
        done = subprocess.run(
            [PREFECT, "--no-prompt", *args],
            cwd=cwd,
            env=self.env(**env),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"prefect {' '.join(args)} exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
            )
        return done

    def start_worker(
        self,
        pool: str,
        name: str | None = None,
        *,
        prefetch_seconds: int = 5,
        query_seconds: float = 1,
        wait: bool = True,
        **env: str,
    ) -> Worker:
        """Start a process worker on `pool`; with `wait`, return once the server sees it."""
        name = name or f"{pool}-worker-{len(self.workers)}"
        log = self.home / f"{name}.log"
        command = [
            PREFECT,
            "worker",
            "start",
            "--pool",
            pool,
            "--type",
            "process",
            "--name",
            name,
            "--prefetch-seconds",
            str(prefetch_seconds),
            "--install-policy",
            "never",
        ]
        # Poll every `query_seconds` instead of every 10 s (the first heartbeat is sent at start).
        worker_env = self.env(PREFECT_WORKER_QUERY_SECONDS=str(query_seconds), **env)
        worker = Worker(self._spawn(command, log, worker_env), name, pool, log)
        self.workers.append(worker)
        if wait:
            self.wait_for_worker(worker)
        return worker

    def wait_for_worker(self, worker: Worker, timeout: float = 60) -> None:
        """Wait until the server has the worker's first heartbeat."""
        self.wait_for(
            lambda: any(w["name"] == worker.name for w in self.post(f"/work_pools/{worker.pool}/workers/filter", {})),
            timeout,
            lambda: f"worker {worker.name} never sent a heartbeat:\n{worker.output()}",
            alive=worker.process,
        )
        self.timings[f"worker_ready_s[{worker.name}]"] = round(time.monotonic() - worker.started, 2)

    def stop(self) -> None:
        """Stop the workers (with their flow runs), then the server."""
        for worker in self.workers:
            stop_process_tree(worker.process)
        if self.process is not None:
            stop_process_tree(self.process)
        self.http.close()

    def __enter__(self) -> PrefectServer:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the REST API (what the UI calls) --------------------------------------------------

    def _request(self, method: str, path: str, body: dict | None = None) -> Any:
        """One API call, retried as Prefect's own client retries: on 429/502/503 (the server answers
        503 when SQLite is locked) and on connection errors, with backoff, for up to ~30 s."""
        for attempt in range(7):
            try:
                response = self.http.request(method, path, json=body)
            except httpx.TransportError:
                if attempt == 6:
                    raise
            else:
                if response.status_code not in RETRY_CODES or attempt == 6:
                    break
            time.sleep(0.5 * 2**attempt if attempt < 5 else 8)
        if response.status_code >= 400:
            raise AssertionError(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None

    def get(self, path: str) -> Any:
        return self._request("GET", path)

    def post(self, path: str, body: dict) -> Any:
        return self._request("POST", path, body)

    def delete(self, path: str) -> Any:
        return self._request("DELETE", path)

    def deployment(self, flow: str, name: str) -> dict:
        return self.get(f"/deployments/name/{flow}/{name}")

    def create_flow_run(self, deployment_id: str, parameters: dict, job_variables: dict | None = None) -> dict:
        body = {"parameters": parameters, "job_variables": job_variables or {}}
        return self.post(f"/deployments/{deployment_id}/create_flow_run", body)

    def flow_run(self, flow_run_id: str) -> dict:
        return self.get(f"/flow_runs/{flow_run_id}")

    def flow_runs_of(self, deployment_id: str) -> list[dict]:
        return self.post("/flow_runs/filter", {"deployments": {"id": {"any_": [deployment_id]}}, "limit": 200})

    def set_state(self, flow_run_id: str, state: dict, force: bool = False) -> dict:
        return self.post(f"/flow_runs/{flow_run_id}/set_state", {"state": state, "force": force})

    def task_runs(self, flow_run_id: str) -> list[dict]:
        return self.post("/task_runs/filter", {"flow_runs": {"id": {"any_": [flow_run_id]}}, "limit": 200})

    def artifacts(self, flow_run_id: str) -> list[dict]:
        return self.post("/artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})

    def logs(self, flow_run_id: str, limit: int = 200) -> list[str]:
        """The flow run's log messages, oldest first."""
        body = {"logs": {"flow_run_id": {"any_": [flow_run_id]}}, "sort": "TIMESTAMP_ASC", "limit": limit}
        return [entry["message"] for entry in self.post("/logs/filter", body)]

    # --- waiting ---------------------------------------------------------------------------

    def describe(self, flow_run_id: str) -> str:
        """A flow run's state, its last logs and the workers' last output: for failure messages."""
        try:
            run = self.flow_run(flow_run_id)
            state = run["state"]
            state = f"{state['type']}/{state['name']} (run_count {run['run_count']}): {state.get('message')}"
            logs = "\n".join(message[:300] for message in self.logs(flow_run_id)[-25:])
        except Exception as exc:  # a diagnostic must not hide the failure it describes
            state, logs = f"(could not read: {exc})", ""
        workers = "\n".join(f"--- worker {w.name}:\n{w.output(30)}" for w in self.workers)
        return f"flow run {flow_run_id}: {state}\n--- its last logs:\n{logs}\n{workers}"

    def wait_for(
        self,
        condition: Callable[[], Any],
        timeout: float,
        message: Callable[[], str],
        *,
        interval: float = 0.2,
        alive: subprocess.Popen | None = None,
    ) -> Any:
        """Poll `condition` until it is truthy (and return it), else fail with `message()`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = condition()
            except (httpx.TransportError, OSError):
                value = None
            if value:
                return value
            if alive is not None and alive.poll() is not None:
                raise AssertionError(f"process exited with {alive.returncode}: {message()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout:.0f}s: {message()}")
            time.sleep(interval)

    def wait_for_state(self, flow_run_id: str, accept: Callable[[dict], bool], timeout: float, what: str) -> dict:
        """Wait until the flow run's state passes `accept`; fail early on an unexpected end."""

        def check() -> dict | None:
            run = self.flow_run(flow_run_id)
            if accept(run["state"]):
                return run
            if run["state"]["type"] in TERMINAL:
                raise AssertionError(f"expected {what}, the run ended instead: {self.describe(flow_run_id)}")
            return None

        return self.wait_for(check, timeout, lambda: f"expected {what}: {self.describe(flow_run_id)}")

    def wait_for_terminal(self, flow_run_id: str, expected: str, timeout: float = 120) -> dict:
        """Wait for the flow run to end, and assert it ended in `expected` (COMPLETED, ...)."""

        def ended() -> dict | None:
            run = self.flow_run(flow_run_id)
            return run if run["state"]["type"] in TERMINAL else None

        run = self.wait_for(ended, timeout, lambda: f"expected {expected}: {self.describe(flow_run_id)}")
        assert run["state"]["type"] == expected, f"expected {expected}: {self.describe(flow_run_id)}"
        return run
