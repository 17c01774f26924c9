"""Shared fixtures: one real Prefect server per session, the sample data, and the CLI runner.

Prefect settings are set here, before anything imports prefect: a throw-away PREFECT_HOME,
no analytics, and a task-run recorder that keeps up with many short tasks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_PREFECT_HOME = tempfile.mkdtemp(prefix="bqhold-prefect-home-")
os.environ.update(
    {
        "PREFECT_HOME": _PREFECT_HOME,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_BATCH_SIZE": "200",
    }
)
os.environ.pop("PREFECT_API_URL", None)

pytest_plugins = ["tests.emulator.fixtures"]

SAMPLE = ROOT / "flows" / "sample" / "events.jsonl"
# The summary keys scripts rely on (docs/design.md, Summary keys), written out here as the tests' own
# oracle (not read from the code).
SUMMARY_KEYS = {
    "run_id",
    "status",
    "rows_read",
    "rows_written",
    "rows_quarantined",
    "duplicates_skipped",
    "rows_loaded",
    "verified",
    "batches",
    "final_batch_size",
    "resumed_from_batch",
    "peak_rss_mb",
    "duration_s",
    "hold_dir",
}


@pytest.fixture
def retry_timing(monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """`retry_timing(first_wait_s=0.01, request_timeout_s=1.5)` makes this test's warehouse
    retries fast: the retry module's timing is replaced, as tests replace `sleep`."""
    from bqhold.tasks.core import retry  # imported here: prefect's settings above come first

    def use(**timing: float) -> None:
        monkeypatch.setattr(retry, "TIMING", replace(retry.TIMING, **timing))

    return use


@pytest.fixture(scope="session")
def prefect_api() -> Iterator[str]:
    """A real Prefect server (prefect_test_harness) for the session; yields its API URL."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        url = PREFECT_API_URL.value()
        os.environ["PREFECT_API_URL"] = url  # subprocesses (the CLI) report to the same server
        yield url
        os.environ.pop("PREFECT_API_URL", None)


@dataclass
class CliResult:
    """A finished `python flows/run.py` process."""

    code: int
    stdout: str
    stderr: str
    summary: dict | None

    @property
    def output(self) -> str:
        """stdout and stderr together."""
        return self.stdout + self.stderr


@dataclass
class Workspace:
    """A directory with its own hold dir and warehouse, and a way to run the CLI in it."""

    root: Path
    api_url: str

    @property
    def hold(self) -> Path:
        """The hold directory of this workspace."""
        return self.root / "hold"

    @property
    def warehouse(self) -> Path:
        """The DuckDB warehouse file of this workspace."""
        return self.root / "warehouse.duckdb"

    def command(self, *args: str) -> list[str]:
        """The local command with this workspace's hold dir and warehouse, and `args`."""
        return [
            sys.executable,
            str(ROOT / "flows" / "run.py"),
            "--hold-dir",
            str(self.hold),
            "--warehouse",
            f"duckdb://{self.warehouse}",
            "--no-progress",
            *args,
        ]

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment of a run that reports to the session's Prefect server."""
        return {**os.environ, "PREFECT_API_URL": self.api_url, **(extra or {})}

    def cli(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> CliResult:
        """Run the local command to its end; its summary is read from --summary-json."""
        summary = self.root / "summary.json"
        summary.unlink(missing_ok=True)
        done = subprocess.run(
            self.command("--summary-json", str(summary), *args),
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        parsed = json.loads(summary.read_text()) if summary.exists() else None
        return CliResult(done.returncode, done.stdout, done.stderr, parsed)

    def subcommand(self, name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 180) -> CliResult:
        """Run `python flows/run.py NAME` on this workspace's hold dir (and warehouse, where it takes one);
        an explicit `--warehouse` in `args` wins (argparse keeps the last)."""
        targets = ["--hold-dir", str(self.hold)]
        if name in ("redeliver", "cleanup", "abandon"):
            targets += ["--warehouse", f"duckdb://{self.warehouse}"]
        done = subprocess.run(
            [sys.executable, str(ROOT / "flows" / "run.py"), name, *targets, *args],
            cwd=self.root,
            env=self.env(env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return CliResult(done.returncode, done.stdout, done.stderr, None)


def warehouse_counts(warehouse: Path, table: str = "events") -> tuple[int, int]:
    """(rows, distinct event ids) in a table of a DuckDB warehouse file."""
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(f"SELECT count(*), count(DISTINCT event_id) FROM {table}").fetchone()


def expected_records(path: Path) -> tuple[set[str], int]:
    """Independent oracle: the distinct event ids of the good lines, and the number of bad lines."""
    ids, bad = set(), 0
    for raw in path.read_bytes().splitlines():
        try:
            record = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            bad += 1
            continue
        if isinstance(record, dict):
            ids.add(record["event_id"])
        else:
            bad += 1
    return ids, bad


def numbered_records(path: Path, prefix: str, rows: int) -> Path:
    """Write `rows` JSONL records {"id": "<prefix><n>", "n": n} to `path`; return it."""
    path.write_text("".join(json.dumps({"id": f"{prefix}{n}", "n": n}) + "\n" for n in range(rows)))
    return path


def runs_in(hold: Path) -> list[str]:
    """The run ids a hold dir has a folder for (none when it has no runs/ yet)."""
    return sorted(p.name for p in (hold / "runs").glob("*")) if (hold / "runs").exists() else []


def distinct_event_ids(path: Path) -> int:
    """How many distinct event ids the good lines of a JSONL input hold."""
    return len(expected_records(path)[0])


@pytest.fixture
def workspace(tmp_path: Path, prefect_api: str) -> Workspace:
    """An empty workspace whose CLI runs report to the session's Prefect server."""
    return Workspace(tmp_path, prefect_api)
