"""Run the gcp-storage-emulator Cloud Storage emulator (PyPI `gcp-storage-emulator`) as a subprocess.

setup.sh installs it into the local-bigquery venv; local-bigquery started with
storage_emulator_host=StorageEmulator.endpoint reads `gs://` load URIs from it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.emulator.process import EmulatorProcess
from tests.emulator.server import _MARKER, _SCRUBBED_ENV, SETUP_SCRIPT, EmulatorError, emulator_venv

if TYPE_CHECKING:
    from google.cloud import storage

STORAGE_EMULATOR_VERSION = "2026.7.19"
# Its defaults come from PORT/HOST/STORAGE_BASE/STORAGE_DIR/PROJECT_NUMBER; -d, --host and --port
# override the first three, STORAGE_DIR would rename the data dir's subdirectory.
_STORAGE_SCRUBBED_ENV = (*_SCRUBBED_ENV, "STORAGE_DIR", "STORAGE_BASE", "PROJECT_NUMBER")


def storage_executable() -> Path | None:
    """Return the installed `gcp-storage-emulator`, or None if setup.sh has not installed this version."""
    venv = emulator_venv()
    exe = venv / "bin" / "gcp-storage-emulator"
    try:  # line 1 of setup.sh's marker holds the pins it installed
        pins = (venv / _MARKER).read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    installed = f"gcp-storage-emulator=={STORAGE_EMULATOR_VERSION}" in pins
    return exe if installed and exe.is_file() and os.access(exe, os.X_OK) else None


class StorageEmulator(EmulatorProcess):
    """One `gcp-storage-emulator start` process on 127.0.0.1 with its own temporary data dir."""

    program = "gcp-storage-emulator"
    workdir_prefix = "bqhold-gcs-emulator-"
    log_name = "storage-emulator.log"
    scrubbed_env = _STORAGE_SCRUBBED_ENV
    # A bind failure kills only its server thread: the process lives on without listening.
    bind_failure_keeps_running = True

    def __init__(
        self,
        executable: Path | None = None,
        project: str = "test-project",
        startup_timeout: float = 30.0,
        quiet: bool = True,
    ) -> None:
        """quiet: pass --quiet (critical-level logging only; otherwise every request is logged)."""
        exe = executable or storage_executable()
        if exe is None:
            raise EmulatorError(f"gcp-storage-emulator is not installed: run {SETUP_SCRIPT}")
        super().__init__(exe, project, startup_timeout)
        self.quiet = quiet

    def _command(self) -> list[str]:
        # Its venv's Python runs it through gcs_preconditions.py, which adds the 412s it lacks.
        python = self.executable.parent / "python"
        launcher = [str(python), str(Path(__file__).with_name("gcs_preconditions.py"))]
        cmd = [*launcher, "-d", str(self.data_dir), "start", "--host", "127.0.0.1", "--port", str(self.port)]
        if self.quiet:
            cmd.append("--quiet")
        return cmd

    def _ready_url(self) -> str:
        """Poll the health check `GET /` (answers "OK")."""
        return f"{self.endpoint}/"

    def client(self, **kwargs: Any) -> storage.Client:
        """Return a google-cloud-storage Client with anonymous credentials for this emulator."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        kwargs.setdefault("project", self.project)
        return storage.Client(
            credentials=AnonymousCredentials(), client_options={"api_endpoint": self.endpoint}, **kwargs
        )
