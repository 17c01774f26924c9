"""The lifecycle the emulators share: start an emulator as a subprocess, wait until it answers, stop it.

server.py (local-bigquery) and storage_server.py (gcp-storage-emulator) subclass EmulatorProcess and
supply the command line, the environment and the readiness check.
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
from typing import Self

from bqhold.flows._local_server import free_port

_PORT_CLASH = "address already in use"


class EmulatorError(RuntimeError):
    """The emulator could not be started or did not answer."""


class EmulatorProcess:
    """One emulator process on 127.0.0.1 with its own temporary data dir, in its own session."""

    program: str  # the name in error messages
    workdir_prefix: str  # of the temporary dir holding the data dir and the log
    log_name: str
    scrubbed_env: tuple[str, ...] = ()  # variables the child must not inherit
    # True when a failed bind leaves the process running without listening: then waiting ends early.
    bind_failure_keeps_running = False

    def __init__(self, executable: Path, project: str, startup_timeout: float) -> None:
        self.executable = Path(executable)
        self.project = project
        self.startup_timeout = startup_timeout
        self.port = 0
        self.data_dir: Path | None = None
        self._workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """Return "127.0.0.1:PORT" of the HTTP API."""
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        """Return the base URL, also the value BIGQUERY_EMULATOR_HOST or STORAGE_EMULATOR_HOST needs."""
        return f"http://{self.host}"

    @property
    def log_path(self) -> Path | None:
        """Return the file holding the emulator's stdout and stderr (None when not started)."""
        return None if self._workdir is None else self._workdir / self.log_name

    def _pick_ports(self) -> None:
        self.port = free_port()

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k not in self.scrubbed_env}

    def _ready_url(self) -> str:
        raise NotImplementedError

    def _http_error(self, url: str, exc: urllib.error.HTTPError) -> EmulatorError:
        """Return the error for an HTTP error answer to the readiness URL (start-up fails at once)."""
        return EmulatorError(f"{self.program} answered {exc.code} to GET {url}; log tail:\n{self.log_tail()}")

    def start(self) -> Self:
        """Start the process and wait until it answers; retry on a port clash."""
        if self._proc is not None:
            return self
        self._workdir = Path(tempfile.mkdtemp(prefix=self.workdir_prefix))
        self.data_dir = self._workdir / "data"
        self.data_dir.mkdir()
        try:
            for attempt in range(3):
                self._pick_ports()
                self._spawn()
                try:
                    self._wait_ready()
                    return self
                except EmulatorError:
                    if attempt == 2 or _PORT_CLASH not in self.log_tail().lower():
                        raise
                    self._kill()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self) -> None:
        assert self.log_path is not None
        with open(self.log_path, "wb") as log:
            self._proc = subprocess.Popen(
                self._command(),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env(),
                start_new_session=True,
            )

    def _wait_ready(self) -> None:
        assert self._proc is not None
        url = self._ready_url()
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise EmulatorError(
                    f"{self.program} exited with code {self._proc.returncode}"
                    f" during start-up; log tail:\n{self.log_tail()}"
                )
            try:
                with opener.open(url, timeout=2) as response:
                    if response.status == 200:
                        return
            except urllib.error.HTTPError as exc:
                raise self._http_error(url, exc) from exc
            except (urllib.error.URLError, OSError):
                pass
            if self.bind_failure_keeps_running and _PORT_CLASH in self.log_tail().lower():
                raise EmulatorError(f"{self.program} could not bind {url}; log tail:\n{self.log_tail()}")
            time.sleep(0.1)
        raise EmulatorError(
            f"{self.program} did not answer {url} within {self.startup_timeout}s; log tail:\n{self.log_tail()}"
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

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
