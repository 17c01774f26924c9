"""Prefect's temporary local server, started early so its start-up overlaps ours.

Without `PREFECT_API_URL`, Prefect would import its whole server into this process and then
start the same server in a subprocess only when the flow begins (~5 s, +60 MB RSS here).
Starting that subprocess first, with Prefect's own command and settings, lets it boot while
this process imports polars and DuckDB and checks the input. With `PREFECT_API_URL` set
(Prefect Cloud, a self-hosted or `prefect server start` server) nothing is started.

The server's own output (SQLite and uvicorn tracebacks included) goes to a log file, never to
the terminal; a server that cannot start is one line naming the cause and that log. Local runs
share Prefect's database (`~/.prefect/prefect.db`, PREFECT_HOME): if the server cannot start
with it (damaged, locked, on a full disk), it is tried once more with a private temporary
database, and the user is told which file to deal with.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from importlib.util import find_spec
from pathlib import Path

from bqhold.tasks.core.errors import OrchestratorUnavailable

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


_EXCEPTION_LINE = re.compile(r"^[\w.]*(?:Error|Exception|Exit)\b.*: .+$")


def failure_cause(log_text: str, returncode: int | None) -> str:
    """Why a server process did not start, in a few words: the signal that ended it, or the
    last exception its log names, or its exit code; None as `returncode` means it never answered."""
    if returncode is None:
        return f"it did not answer within {_START_TIMEOUT_S:.0f} s"
    if returncode < 0:
        name = signal.Signals(-returncode).name
        return f"killed by {name}" + (", out of memory?" if -returncode == signal.SIGKILL else "")
    found = [line.strip() for line in log_text.splitlines() if _EXCEPTION_LINE.match(line.strip())]
    return found[-1] if found else f"it exited with code {returncode}"


def _shared_database() -> str:
    """The database the server uses unless told otherwise, for messages (a file path, never a URL
    with a password in it)."""
    from prefect.settings import get_current_settings

    url = get_current_settings().server.database.connection_url
    text = url.get_secret_value() if url is not None else ""
    if text.startswith("sqlite"):
        return text.split(":///", 1)[-1]
    return "the database PREFECT_SERVER_DATABASE_CONNECTION_URL names"


class LocalPrefectServer:
    """`with LocalPrefectServer(): ...` runs the block against a temporary Prefect server."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.url: str | None = None
        self.port: int | None = None
        self.log: Path | None = None  # the server's output
        self.notes: list[str] = []  # what the user should know even though the server runs
        self._private: Path | None = None  # a private database's directory, when one is used
        self._keep_log = False
        self._log_start = 0

    def start(self) -> LocalPrefectServer:
        """Spawn the server unless an API URL is configured; do not wait for it."""
        if os.environ.get("PREFECT_API_URL"):
            return self
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api"
        self._spawn()
        os.environ["PREFECT_API_URL"] = self.url
        os.environ.setdefault("PREFECT_UI_URL", "")  # this server has no UI: no "View at" links
        return self

    def _spawn(self, database_url: str | None = None) -> None:
        prefect_dir = Path(find_spec("prefect").origin).parent
        env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
        if database_url:
            env["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = database_url
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
            str(self.port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ]
        if self.log is None:
            descriptor, name = tempfile.mkstemp(prefix="bqhold-prefect-server-", suffix=".log")
            os.close(descriptor)
            self.log = Path(name)
        self._log_start = self.log.stat().st_size  # a retry appends: its cause is read from here on
        with open(self.log, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    def _answers(self) -> str | None:
        """None once the server answers its health check; else why it will not."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return failure_cause(self._log_text(), self.process.returncode)
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    if response.status == 200:
                        return None
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.05)
        self._terminate()
        return failure_cause(self._log_text(), None)

    def _log_text(self) -> str:
        """What the current server process wrote to the log."""
        try:
            with open(self.log, "rb") as log:
                log.seek(self._log_start)
                return log.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_ready(self) -> None:
        """Block until the server answers; if it cannot start with the shared database, try once
        with a private one (and note it); OrchestratorUnavailable if that fails too."""
        if self.process is None:
            return
        cause = self._answers()
        if cause is None:
            return
        self._keep_log = True  # a message names it from here on
        shared = _shared_database()
        self._private = Path(tempfile.mkdtemp(prefix="bqhold-prefect-db-"))
        self._spawn(f"sqlite+aiosqlite:///{self._private / 'prefect.db'}")
        retry_cause = self._answers()
        if retry_cause is None:
            self.notes.append(
                f"Prefect's database {shared} cannot be used ({cause}; see {self.log}); this run uses a "
                f"temporary database instead: move {shared} away (Prefect makes a new one) to keep run history"
            )
            return
        causes = cause if retry_cause == cause else f"{cause}; with a private database: {retry_cause}"
        raise OrchestratorUnavailable(
            f"Prefect's temporary server did not start ({causes}; its output is in {self.log}): free memory or "
            "disk space and re-run, or set PREFECT_API_URL to a running Prefect server (prefect server start)"
        )

    def _terminate(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def stop(self) -> None:
        """Send what Prefect still queues for the server, then stop it if this object started it;
        its log goes too unless a message named it or the server died on its own."""
        if self.process is None:
            return
        if self.process.poll() is None:
            _drain_prefect_workers()
            self._terminate()
        else:
            self._keep_log = True
        if not self._keep_log and self.log is not None:
            self.log.unlink(missing_ok=True)
        if self._private is not None:
            shutil.rmtree(self._private, ignore_errors=True)

    def __enter__(self) -> LocalPrefectServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
