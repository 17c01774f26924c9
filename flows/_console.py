"""What the local command shows while it runs: a progress bar fed by the checkpoint.

The progress bar reads the newest checkpoint in the hold directory twice a second, so it
knows nothing of the flow and costs the batch loop nothing.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psutil
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.inputs import InputFile

stderr = Console(stderr=True, highlight=False)


def _newest_checkpoint(hold_dir: Path, since_ns: int) -> checkpoints.Checkpoint | None:
    stamped = []
    for path in (hold_dir / "runs").glob("*/checkpoint.json"):
        try:
            stamped.append((path.stat().st_mtime_ns, path))
        except OSError:
            continue
    if not stamped or max(stamped)[0] < since_ns:
        return None
    newest = max(stamped)[1]
    try:
        return checkpoints.load(newest)
    except (StateError, OSError):
        return None


class CheckpointProgress:
    """A rich progress bar that follows the newest checkpoint of a hold directory."""

    def __init__(self, hold_dir: Path, inputs: tuple[InputFile, ...]) -> None:
        """`inputs`: the run's input files, to say how far through them the checkpoint is."""
        self.hold_dir, self.inputs = hold_dir, inputs
        self.since_ns = time.time_ns()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="bqhold-progress", daemon=True)
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=True,
        )

    def __enter__(self) -> CheckpointProgress:
        self._progress.start()
        self._task = self._progress.add_task("starting", total=None, detail="")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._progress.stop()

    def _follow(self) -> None:
        process = psutil.Process()
        while not self._stop.wait(0.5):
            current = _newest_checkpoint(self.hold_dir, self.since_ns)
            if current is None:
                continue
            counters = current.counters
            detail = (
                f"{counters.rows_written:,} rows staged · batch {current.next_batch} "
                f"({current.batch_size:,} rows) · RSS {process.memory_info().rss / 2**20:,.0f} MB"
            )
            self._progress.update(
                self._task,
                description=current.phase.value,
                detail=detail,
                total=100,
                completed=checkpoints.progress_percent(current, self.inputs),
            )
