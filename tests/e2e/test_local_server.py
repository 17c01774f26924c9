"""The local command's own Prefect server (no PREFECT_API_URL): a damaged shared database does not
stop a run, and a server that cannot start is one `bqhold:` line, never its tracebacks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.events import write as write_events
from tests.conftest import ROOT, warehouse_counts

pytestmark = pytest.mark.slow


def local_command(tmp_path: Path, data: Path) -> list[str]:
    return [
        sys.executable,
        str(ROOT / "flows" / "run.py"),
        "--input",
        str(data),
        "--hold-dir",
        str(tmp_path / "hold"),
        "--warehouse",
        f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        "--no-progress",
    ]


def without_a_server(home: Path) -> dict[str, str]:
    """An environment in which the command starts its own server, with `home` as PREFECT_HOME
    (and the server's log beside it)."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_")}
    return {**env, "PREFECT_HOME": str(home), "TMPDIR": str(home.parent)}


def test_a_damaged_prefect_database_does_not_stop_a_local_run(tmp_path: Path) -> None:
    home = tmp_path / "prefect-home"
    home.mkdir()
    damaged = b"this is not a SQLite database\n" * 100
    (home / "prefect.db").write_bytes(damaged)
    data = write_events(tmp_path / "events.jsonl", rows=50, duplicate_rate=0)

    done = subprocess.run(
        local_command(tmp_path, data), env=without_a_server(home), capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and "uvicorn" not in done.stderr, "the server's output stays in its log"
    (note,) = [line for line in done.stderr.splitlines() if line.startswith("bqhold:")]
    assert str(home / "prefect.db") in note and "temporary database" in note, note
    log = Path(note.split("see ")[-1].split()[0].rstrip(").;,"))
    assert log.parent == tmp_path and "file is not a database" in log.read_text(), "the server's error is kept"
    assert (home / "prefect.db").read_bytes() == damaged, "the user's database is left for them to deal with"
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (50, 50)


def test_a_server_killed_while_starting_is_one_line_and_exit_1(tmp_path: Path) -> None:
    """The kernel's OOM killer ends the biggest process: here, every server the command starts."""
    data = write_events(tmp_path / "events.jsonl", rows=50, duplicate_rate=0)
    (tmp_path / "prefect-home").mkdir()
    command = subprocess.Popen(
        local_command(tmp_path, data),
        env=without_a_server(tmp_path / "prefect-home"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = 0
    deadline = time.monotonic() + 120
    while command.poll() is None and time.monotonic() < deadline:
        for child in psutil.Process(command.pid).children(recursive=True):
            try:
                if "prefect.server.api.server:create_app" in " ".join(child.cmdline()):
                    child.kill()
                    killed += 1
            except psutil.NoSuchProcess:
                pass
        time.sleep(0.02)
    stdout, stderr = command.communicate(timeout=30)
    assert killed >= 1
    assert command.returncode == 1, stdout + stderr
    assert "Traceback" not in stderr, stderr
    (line,) = stderr.strip().splitlines()
    assert line.startswith("bqhold: ") and "Prefect" in line and "SIGKILL" in line and "PREFECT_API_URL" in line, line
    assert not (tmp_path / "hold" / "runs").exists(), "nothing was staged without an orchestrator"


def test_an_unreachable_prefect_api_is_one_line_and_exit_1(tmp_path: Path) -> None:
    from bqhold.flows._local_server import free_port

    data = write_events(tmp_path / "events.jsonl", rows=50, duplicate_rate=0)
    env = {**without_a_server(tmp_path / "prefect-home"), "PREFECT_API_URL": f"http://127.0.0.1:{free_port()}/api"}
    done = subprocess.run(local_command(tmp_path, data), env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert line.startswith("bqhold: ") and env["PREFECT_API_URL"] in line and "PREFECT_API_URL" in line, line
