"""Prefect's temporary local server, started early so its start-up overlaps ours.

Without `PREFECT_API_URL`, Prefect would import its whole server into this process and then
start the same server in a subprocess only when the flow begins (~5 s, +60 MB RSS here).
Starting that subprocess first, with Prefect's own command and settings, lets it boot while
this process imports polars and DuckDB and checks the input. With `PREFECT_API_URL` set
(Prefect Cloud, a self-hosted or `prefect server start` server) nothing is started.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib.util import find_spec
from pathlib import Path

_START_TIMEOUT_S = 60.0
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, even by SIGKILL (Linux; else no-op)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _drain_prefect_workers() -> None:
    """Flush Prefect's queued logs and events (as prefect_test_harness does before stopping)."""
    if "prefect" not in sys.modules:
        return
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogWorker

    for worker in (APILogWorker, EventsWorker):
        try:
            worker.drain_all(timeout=5)
        except RuntimeError:
            pass  # never started


class LocalPrefectServer:
    """`with LocalPrefectServer(): ...` runs the block against a temporary Prefect server."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None

    def start(self) -> LocalPrefectServer:
        """Spawn the server unless an API URL is configured; do not wait for it."""
        if os.environ.get("PREFECT_API_URL"):
            return self
        prefect_dir = Path(find_spec("prefect").origin).parent
        port = free_port()
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(prefect_dir.parent),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        self.process = subprocess.Popen(
            command, env=env, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=die_with_parent
        )
        self.url = f"http://127.0.0.1:{port}/api"
        os.environ["PREFECT_API_URL"] = self.url
        os.environ.setdefault("PREFECT_UI_URL", "")  # this server has no UI: no "View at" links
        return self

    def wait_ready(self) -> None:
        """Block until the server answers its health check (RuntimeError if it died)."""
        if self.process is None:
            return
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the temporary Prefect server exited with code {self.process.returncode}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        raise RuntimeError(f"the temporary Prefect server did not answer within {_START_TIMEOUT_S:.0f}s")

    def stop(self) -> None:
        """Send what Prefect still queues for the server, then stop it if this object started it."""
        if self.process is None or self.process.poll() is not None:
            return
        _drain_prefect_workers()
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def __enter__(self) -> LocalPrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
