"""Run the local-bigquery BigQuery emulator (PyPI `local-bigquery` 0.3.2) as a subprocess.

Install it with tests/emulator/setup.sh (own Python 3.13 venv); this module only finds and runs it.
setup.sh also installs gcp-storage-emulator, the Cloud Storage emulator storage_server.py runs.

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
- gs:// URIs: with STORAGE_EMULATOR_HOST set (storage_emulator_host=) load jobs read them through
  DuckDB's httpfs extension from that Cloud Storage emulator (a GCS secret with its endpoint and
  path-style URLs); extract jobs upload with a JSON-API media upload. Without it, or with
  GCS_LOCAL_ROOT set, gs:// means files under GCS_LOCAL_ROOT or <data dir>/gcs. Inherited values
  of both are scrubbed, so only the explicit endpoint counts. A list of URIs works; a wildcard URI
  fails with BadRequest "... (HTTP 501 Not Implemented)" (DuckDB lists via the XML API, which
  gcp-storage-emulator lacks), a missing object or bucket with BadRequest "... (HTTP 404 Not Found)".
Supported as BigQuery does: explicit job_id (a reused one raises Conflict, for loads and queries),
failed loads kept as DONE jobs with error_result, ALLOW_FIELD_ADDITION and ALLOW_FIELD_RELAXATION,
REQUIRED columns, DELETE/UPDATE/MERGE with num_dml_affected_rows, multi-statement transactions,
job labels, WRITE_TRUNCATE/WRITE_EMPTY, CREATE_NEVER, Parquet loads, insert_rows_json row_ids
de-duplication, INFORMATION_SCHEMA.TABLES/JOBS, partitioning/clustering metadata, parallel loads.
"""

from __future__ import annotations

import os
import time
import urllib.error
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bqhold.flows._local_server import free_port
from tests.emulator.process import EmulatorError, EmulatorProcess

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
    "STORAGE_EMULATOR_HOST",
    "GCS_LOCAL_ROOT",
)
_EXTENSIONS = ("icu", "ducklake", "spatial", "httpfs")


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
    extensions = [ext_dir / f"{name}.duckdb_extension" for name in _EXTENSIONS]
    return exe if exe.is_file() and all(p.is_file() for p in extensions) else None


class BigQueryEmulator(EmulatorProcess):
    """One `local-bigquery serve` process on 127.0.0.1 with its own temporary data dir."""

    program = "local-bigquery"
    workdir_prefix = "bqhold-emulator-"
    log_name = "emulator.log"
    scrubbed_env = _SCRUBBED_ENV

    def __init__(
        self,
        executable: Path | None = None,
        project: str = "test-project",
        startup_timeout: float = 60.0,
        storage_emulator_host: str | None = None,
    ) -> None:
        """storage_emulator_host: Cloud Storage emulator URL ("http://127.0.0.1:PORT") for gs:// URIs."""
        exe = executable or emulator_executable()
        if exe is None:
            raise EmulatorError(f"local-bigquery is not installed: run {SETUP_SCRIPT}")
        super().__init__(exe, project, startup_timeout)
        self.storage_emulator_host = storage_emulator_host
        self.grpc_port = 0

    @property
    def grpc_address(self) -> str:
        """Return "127.0.0.1:PORT" of the plain-gRPC BigQuery Storage Read API."""
        return f"127.0.0.1:{self.grpc_port}"

    def _pick_ports(self) -> None:
        self.port, self.grpc_port = free_port(), free_port()

    def _command(self) -> list[str]:
        return [
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

    def _env(self) -> dict[str, str]:
        env = super()._env()
        if self.storage_emulator_host:
            env["STORAGE_EMULATOR_HOST"] = self.storage_emulator_host
        return env

    def _ready_url(self) -> str:
        """Poll the dataset list (it touches DuckDB, so broken extensions show up here)."""
        return f"{self.endpoint}/bigquery/v2/projects/{self.project}/datasets"

    def _http_error(self, url: str, exc: urllib.error.HTTPError) -> EmulatorError:
        body = exc.read().decode(errors="replace")[:500]
        time.sleep(0.5)  # let the server log its traceback before we read the tail
        return EmulatorError(
            f"local-bigquery answered {exc.code} to GET {url}: {body}\n"
            f"(missing DuckDB extensions? re-run {SETUP_SCRIPT})\n"
            f"log tail:\n{self.log_tail()}"
        )

    def client(self, **kwargs: Any) -> bigquery.Client:
        """Return a google-cloud-bigquery Client with anonymous credentials for this emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        kwargs.setdefault("project", self.project)
        return bigquery.Client(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}, **kwargs
        )
