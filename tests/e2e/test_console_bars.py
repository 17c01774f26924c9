"""The local command in a terminal (a pseudo-terminal, as a user's shell gives it): the progress
bars show rows/s and ETA while staging, then a loading bar, and Prefect's log lines are printed
above the bars, never over them (flows/_console.py)."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time

from bench.events import write as write_events
from tests.conftest import Workspace, warehouse_counts
from tests.terminal import Terminal


def run_in_a_terminal(workspace: Workspace, *args: str, timeout_s: float = 180) -> tuple[int, str]:
    """Run the local command with a pseudo-terminal as its stderr (stdout too); return its exit
    code and everything it wrote there."""
    command = [arg for arg in workspace.command(*args) if arg != "--no-progress"]
    leader, follower = pty.openpty()
    env = workspace.env({"COLUMNS": "200", "LINES": "50", "TERM": "xterm"})
    process = subprocess.Popen(
        command, cwd=workspace.root, env=env, stdin=subprocess.DEVNULL, stdout=follower, stderr=follower
    )
    os.close(follower)
    output, deadline = bytearray(), time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if select.select([leader], [], [], 0.2)[0]:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the last writer closed: the process is gone
                break
            if not chunk:
                break
            output += chunk
        elif process.poll() is not None:
            break
    os.close(leader)
    return process.wait(timeout=10), output.decode(errors="replace")


def test_a_user_sees_rate_eta_and_loading_with_log_lines_above_the_bars(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=60_000, duplicate_rate=0)
    code, output = run_in_a_terminal(workspace, "--input", str(data), "--key", "event_id", "--batch-size", "2000")
    assert code == 0, output[-3000:]
    assert warehouse_counts(workspace.warehouse) == (60_000, 60_000)

    screen = Terminal().feed(output)
    bars = [line for line in screen.seen if line.startswith(("staging", "loading"))]
    assert any(" rows/s · ETA " in line and "rows staged" in line for line in bars), bars
    assert any(line.startswith("loading") for line in bars), bars
    logged = [line for line in screen.lines if " | INFO " in line]
    assert any("staged batch 0: 2,000 rows in " in line for line in logged), screen.lines
    for line in screen.seen:  # no log line ever shared a line with a bar
        assert not (line.startswith(("staging", "loading")) and " | INFO " in line), line
    assert not any(line.startswith(("staging", "loading")) for line in screen.lines)  # gone at the end
