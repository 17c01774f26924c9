"""The local command's progress bars (flows/_console.py) as a terminal shows them: staging with
rows/s and ETA, then loading; Prefect's log lines printed above the bars, never over them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console

from bqhold.flows._console import CheckpointProgress
from bqhold.tasks.core.checkpoint import Checkpoint, Counters, Phase
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.records import Position
from tests.terminal import Terminal

LOG_LINE = "staged batches 0-4: 500 rows in 10.0 s (50.0 rows/s)"


@pytest.fixture
def terminal() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def prefect_log(terminal: io.StringIO) -> Iterator[logging.Logger]:
    """A logger with Prefect's console handler writing to the same terminal as the bars."""
    logger = logging.getLogger("prefect.bqhold-console-test")
    handler = PrefectConsoleHandler(stream=terminal)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger
    logger.removeHandler(handler)


def test_the_bars_show_rate_eta_and_loading_and_log_lines_print_above_them(
    tmp_path: Path, terminal: io.StringIO, prefect_log: logging.Logger
) -> None:
    source = tmp_path / "events.jsonl"
    source.write_bytes(b"x" * 999 + b"\n")
    inputs = resolve_inputs(str(source))
    start = Checkpoint("generic-1", "fp", batch_size=100)
    half = replace(start, next_batch=5, position=Position(0, 500), counters=Counters(500, 500), batch_size=100)
    console = Console(file=terminal, force_terminal=True, width=200, color_system=None)

    with CheckpointProgress(tmp_path / "hold", inputs, console=console) as bars:
        bars.show(start, now=100.0)
        bars.show(half, now=110.0)
        prefect_log.info(LOG_LINE)
        bars.show(replace(half, phase=Phase.LOADING, input_done=True), now=111.0)
        prefect_log.info("loading group 1 of 1")
        bars.show(replace(half, phase=Phase.DELIVERED, input_done=True), now=112.0)

    screen = Terminal().feed(terminal.getvalue())
    (staging,) = {line for line in screen.seen if line.startswith("staging") and "50%" in line}
    assert "500 rows staged · 50.0 rows/s · ETA 10 s · batch 5 (100 rows) · RSS " in staging, staging
    assert any(line.startswith("loading") and "500 rows into the warehouse" in line for line in screen.seen)
    assert any(line.startswith("loading") and "500 rows loaded and verified" in line for line in screen.seen)
    # The log lines stay on the screen, each on a line of its own; the bars are gone (transient).
    assert [line for line in screen.lines if line.strip()] == [LOG_LINE, "loading group 1 of 1"]
    for line in screen.seen:
        bar, log = "rows staged" in line or "warehouse" in line, "batches 0-4" in line or "group 1" in line
        assert not (bar and log), line
