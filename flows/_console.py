"""What the local command shows while it runs: a progress bar for staging, then one for loading.

The bars follow the newest checkpoint in the hold directory twice a second, so they know nothing
of the flow and cost the batch loop nothing: staging shows the share of the input read, rows
staged, rows/s and ETA (tasks/core/progress.py, as the progress artifact says them), the batch
and memory against the guard's limit; once the checkpoint says `loading`, a second bar runs until
the run is delivered (or not verified).

While the bars are live, Prefect's console log lines are printed through the same rich console,
above the bars, instead of over them.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from pathlib import Path
from typing import IO

from prefect.logging.handlers import PrefectConsoleHandler
from rich.console import Console
from rich.file_proxy import FileProxy
from rich.progress import BarColumn, Progress, TaskID, TaskProgressColumn, TextColumn, TimeElapsedColumn

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.checkpoint import Checkpoint, Phase
from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.memory import critical_share, read_memory
from bqhold.tasks.core.progress import bar_detail, staging_view

stderr = Console(stderr=True, highlight=False)
FOLLOW_S = 0.5


def _newest_checkpoint(hold_dir: Path, since_ns: int) -> Checkpoint | None:
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


class LinesAbove(io.TextIOBase):
    """A file whose lines a live console prints above its display (rich's FileProxy, hidden from
    rich: a Console handed a FileProxy as its file writes past it, to the file it wraps)."""

    def __init__(self, console: Console, file: IO[str]) -> None:
        self.file, self._proxy = file, FileProxy(console, file)

    def write(self, text: str) -> int:
        return self._proxy.write(text)

    def flush(self) -> None:
        self._proxy.flush()

    def isatty(self) -> bool:
        return self.file.isatty()

    def fileno(self) -> int:
        return self.file.fileno()


def prefect_console_handlers() -> list[PrefectConsoleHandler]:
    """Every Prefect console handler installed on a logger (Prefect's own, and `bqhold`'s through
    PREFECT_LOGGING_EXTRA_LOGGERS)."""
    loggers = [logging.getLogger(), *(item for item in logging.Logger.manager.loggerDict.values())]
    found: list[PrefectConsoleHandler] = []
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if isinstance(handler, PrefectConsoleHandler) and handler not in found:
                found.append(handler)
    return found


class CheckpointProgress:
    """Rich progress bars that follow the newest checkpoint of a hold directory."""

    def __init__(
        self,
        hold_dir: Path,
        inputs: tuple[InputFile, ...],
        memory_limit_mb: int | None = None,
        memory_threshold: float = 80.0,
        console: Console = stderr,
    ) -> None:
        """`inputs`: the run's input files, to say how far through them the checkpoint is;
        `memory_limit_mb` and `memory_threshold`: the run's, to show memory as its guard reads it."""
        self.hold_dir, self.inputs, self.memory_limit_mb = hold_dir, inputs, memory_limit_mb
        self.warn, self.critical = memory_threshold / 100, critical_share(memory_threshold)
        self.since_ns = time.time_ns()
        self.first: tuple[Checkpoint, float, float] | None = None  # the first staging checkpoint seen, when
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, name="bqhold-progress", daemon=True)
        self._routed: list[tuple[PrefectConsoleHandler, IO[str]]] = []
        self._loading: TaskID | None = None
        self._progress = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[detail]}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    def __enter__(self) -> CheckpointProgress:
        self._progress.start()
        self._staging = self._progress.add_task("starting", total=None, detail="")
        self._route_logs()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._restore_logs()
        self._progress.stop()

    def _route_logs(self) -> None:
        """Print Prefect's console log lines through the bars' console, above the bars."""
        for handler in prefect_console_handlers():
            self._routed.append((handler, handler.console.file))
            handler.console.file = LinesAbove(self._progress.console, handler.console.file)

    def _restore_logs(self) -> None:
        for handler, file in self._routed:
            proxy = handler.console.file
            if isinstance(proxy, LinesAbove):
                proxy.flush()
            handler.console.file = file
        self._routed.clear()

    def _follow(self) -> None:
        while not self._stop.wait(FOLLOW_S):
            current = _newest_checkpoint(self.hold_dir, self.since_ns)
            if current is not None:
                self.show(current, time.monotonic())

    def show(self, current: Checkpoint, now: float) -> None:
        """Move the bars to `current`, a checkpoint read at `now` (monotonic seconds)."""
        percent = checkpoints.progress_percent(current, self.inputs)
        if self.first is None or self.first[0].run_id != current.run_id:
            self.first = (current, percent, now)
        since, since_percent, since_at = self.first
        memory = read_memory(self.memory_limit_mb)
        view = staging_view(current, percent, since, since_percent, now - since_at, memory, self.warn, self.critical)
        done = current.phase is not Phase.STAGING or current.input_done
        completed = 100 if done else percent
        self._progress.update(
            self._staging, description="staging", detail=bar_detail(view), total=100, completed=completed
        )
        if current.phase is not Phase.STAGING:
            self._show_loading(current)
        self._progress.refresh()

    def _show_loading(self, current: Checkpoint) -> None:
        """The second bar: pulsing while the warehouse loads and verifies, full once the run is through."""
        rows = current.counters.rows_written
        if self._loading is None:
            detail = f"{rows:,} rows into the warehouse, then verified"
            self._loading = self._progress.add_task("loading", total=None, detail=detail)
        if current.phase is Phase.DELIVERED:
            self._progress.update(self._loading, total=1, completed=1, detail=f"{rows:,} rows loaded and verified")
        elif current.phase is Phase.UNVERIFIED:
            self._progress.update(self._loading, total=1, completed=1, detail=f"{rows:,} rows loaded, NOT verified")
