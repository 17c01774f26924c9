"""Run the local-bigquery BigQuery emulator (PyPI `local-bigquery` 0.3.2) as a subprocess.

Install it with tests/emulator/setup.sh (own Python 3.13 venv); this module only finds and runs it.

Emulator gaps observed (local-bigquery 0.3.2 with google-cloud-bigquery 3.47.0):
- Jobs run synchronously: load_table_from_file() and query() return jobs already DONE, so
  PENDING/RUNNING and job-polling timeouts are never exercised.
- Unknown NDJSON fields: with an explicit load-job schema they are silently dropped (BigQuery
  rejects them unless ignore_unknown_values=True); without a job schema the load fails with
  "Cannot add fields (field: X)", even with ignore_unknown_values=True.
- max_bad_records is ignored: one malformed JSON line or bad value fails the whole load (0 rows
  written, the load stays atomic).
- Silent coercions: 9.7 into INT64 is stored as 10, a JSON object into STRING as its JSON text.
- A numeric epoch for TIMESTAMP is rejected ("Unimplemented type for cast (BIGINT -> ...)").
- An empty NDJSON file loads 0 rows with an explicit job schema, but without one fails with
  "Cannot add fields (field: json)".
- Error messages are DuckDB's ("Could not convert string 'x' to INT64 ...", "NOT NULL
  constraint failed: t._run_id"), not BigQuery's; the exception classes (BadRequest, Conflict,
  NotFound) match.
- get_job(job_id, location=...) ignores the location; dry-run queries report 0 bytes.
- Every project also holds a dataset "local" (the emulator's --dataset default).
- Storage Read API: the project venv lacks google-cloud-bigquery-storage, so to_arrow() warns and
  uses REST; pass create_bqstorage_client=False (needed for to_dataframe(), and pandas is absent).
- The emulator reads unprefixed settings from the environment (DATA_DIR, GROUPS, ...).
Supported as BigQuery does: explicit job_id (a reused one raises Conflict, for loads and queries),
failed loads kept as DONE jobs with error_result, ALLOW_FIELD_ADDITION and ALLOW_FIELD_RELAXATION,
REQUIRED columns, DELETE/UPDATE/MERGE with num_dml_affected_rows, multi-statement transactions,
job labels, WRITE_TRUNCATE/WRITE_EMPTY, CREATE_NEVER, Parquet loads, insert_rows_json row_ids
de-duplication, INFORMATION_SCHEMA.TABLES/JOBS, partitioning/clustering metadata, parallel loads.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from flows._local_server import free_port

if TYPE_CHECKING:
    from google.cloud import bigquery

EMULATOR_VERSION = "0.3.2"
SETUP_SCRIPT = Path(__file__).with_name("setup.sh")
_MARKER = ".bqhold-setup-complete"
# The emulator reads unprefixed settings from the environment (pydantic-settings), and a
# Python path from the 3.11 project venv must not leak into its 3.13 interpreter.
_SCRUBBED_ENV = (
    "PYTHONPATH",
    "PYTHONHOME",
    "VIRTUAL_ENV",
    "BIGQUERY_PORT",
    "BIGQUERY_HOST",
    "GRPC_PORT",
    "DATA_DIR",
    "DEFAULT_PROJECT_ID",
    "DEFAULT_DATASET_ID",
)


class EmulatorError(RuntimeError):
    """The emulator could not be started or did not answer."""


def emulator_venv() -> Path:
    """Return the venv setup.sh installs into (BQHOLD_EMULATOR_VENV overrides)."""
    default = Path.home() / ".cache" / "bqhold" / f"local-bigquery-{EMULATOR_VERSION}"
    return Path(os.environ.get("BQHOLD_EMULATOR_VENV") or default)


def emulator_executable() -> Path | None:
    """Return the installed `local-bigquery` executable, or None if setup.sh has not completed."""
    override = os.environ.get("BQHOLD_EMULATOR_BIN")
    if override:
        path = Path(override)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EmulatorError(f"BQHOLD_EMULATOR_BIN={override} is not an executable file")
        return path
    venv = emulator_venv()
    exe = venv / "bin" / "local-bigquery"
    try:  # setup.sh writes the marker last: line 1 the pins, line 2 the DuckDB extension dir
        ext_dir = Path((venv / _MARKER).read_text().splitlines()[1])
    except (OSError, IndexError):
        return None
    extensions = [ext_dir / f"{name}.duckdb_extension" for name in ("icu", "ducklake", "spatial")]
    return exe if exe.is_file() and all(p.is_file() for p in extensions) else None


class BigQueryEmulator:
    """One `local-bigquery serve` process on 127.0.0.1 with its own temporary data dir."""

    def __init__(
        self, executable: Path | None = None, project: str = "test-project", startup_timeout: float = 60.0
    ) -> None:
        exe = executable or emulator_executable()
        if exe is None:
            raise EmulatorError(f"local-bigquery is not installed: run {SETUP_SCRIPT}")
        self.executable = Path(exe)
        self.project = project
        self.startup_timeout = startup_timeout
        self.port = 0
        self.grpc_port = 0
        self.data_dir: Path | None = None
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Return "127.0.0.1:PORT" of the REST API."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """Return the REST base URL, also the value BIGQUERY_EMULATOR_HOST needs."""
        return f"http://{self.host}"

    @property
    def grpc_address(self) -> str:
        """Return "127.0.0.1:PORT" of the plain-gRPC BigQuery Storage Read API."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def log_path(self) -> Path | None:
        """Return the file holding the emulator's stdout and stderr (None when not started)."""
        return None if self._workdir is None else self._workdir / "emulator.log"

    def start(self) -> BigQueryEmulator:
        """Start the process and wait until its REST API answers; retry on a port clash."""
        if self._proc is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix="bqhold-emulator-"))
        self.data_dir = self._workdir / "data"
        self.data_dir.mkdir()
        try:
            for attempt in range(3):
                self.port, self.grpc_port = free_port(), free_port()
                self._spawn()
                try:
                    self._wait_ready()
                    return self
                except EmulatorError:
                    if attempt == 2 or "address already in use" not in self.log_tail().lower():
                        raise
                    self._kill()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        env = {k: v for k, v in os.environ.items() if k not in _SCRUBBED_ENV}
        cmd = [
            str(self.executable),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--grpc-port",
            str(self.grpc_port),
            "--data-dir",
            str(self.data_dir),
            "--project",
            self.project,
        ]
        assert self.log_path is not None
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )

    def _wait_ready(self) -> None:
        """Poll the dataset list (it touches DuckDB, so broken extensions show up here)."""
        assert self._proc is not None
        url = f"{self.endpoint}/bigquery/v2/projects/{self.project}/datasets"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(
                    f"local-bigquery exited with code {self._proc.returncode}"
                    f" during start-up; log tail:\n{self.log_tail()}"
                )
            try:
                with opener.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                body = exc.read().decode(errors="replace")[:500]
                time.sleep(0.5)  # let the server log its traceback before we read the tail
                raise EmulatorError(
                    f"local-bigquery answered {exc.code} to GET {url}: {body}\n"
                    f"(missing DuckDB extensions? re-run {SETUP_SCRIPT})\n"
                    f"log tail:\n{self.log_tail()}"
                ) from exc
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        raise EmulatorError(
            f"local-bigquery did not answer {url} within {self.startup_timeout}s; log tail:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the emulator's output."""
        try:
            text = self.log_path.read_text(errors="replace") if self.log_path else ""
        except OSError:
            text = ""
        if not text:
            return "<no output>"
        return "\n".join(text.splitlines()[-lines:])

    def client(self, **kwargs: Any) -> bigquery.Client:
        """Return a google-cloud-bigquery Client with anonymous credentials for this emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        kwargs.setdefault("project", self.project)
        return bigquery.Client(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}, **kwargs
        )

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):  # SIGKILL also reaps stray children
            try:
                os.killpg(proc.pid, sig)  # own session: signals the whole process group
            except ProcessLookupError:
                break
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def stop(self) -> None:
        """Terminate the process group and delete the data dir; safe to call twice."""
        self._kill()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None
            self.data_dir = None

    def __enter__(self) -> BigQueryEmulator:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
