"""Graceful stop (docs/design.md, invariant 9): the first SIGINT/SIGTERM finishes the current batch and
stops at the next checkpoint; a second one exits at once.

Exiting at once is safe because every HOLD₂ write is atomic and ordered (see
tasks/storage/hold_writer.py): the next run resumes from whatever was committed.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from bqhold.tasks.core.errors import Interrupted

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _say(message: str) -> None:
    # Straight to file descriptor 2: safe in a signal handler, and not redirected by the
    # flow's print capture.
    os.write(2, f"bqhold: {message}\n".encode())


class StopRequest:
    """Remembers the first stop signal; `check` turns it into `Interrupted` at a safe point."""

    def __init__(self) -> None:
        self.signum: int | None = None

    def handle(self, signum: int, _frame: FrameType | None) -> None:
        """Signal handler: note the first signal, exit at once on the second."""
        name = signal.Signals(signum).name
        if self.signum is not None:
            _say(f"second {name}: stopping at once (HOLD₂ stays consistent; re-run to resume)")
            os._exit(128 + signum)
        self.signum = signum
        _say(f"{name} received: finishing the current batch, then stopping (send it again to stop at once)")

    def check(self, where: str) -> None:
        """Raise Interrupted if a stop was requested; call it only where a checkpoint is written."""
        if self.signum is not None:
            name = signal.Signals(self.signum).name
            raise Interrupted(
                f"stopped by {name} {where}; the checkpoint is written — re-run the same command to resume",
                exit_code=128 + self.signum,
            )


def ignore_file_size_signal() -> None:
    """Turn SIGXFSZ (a file-size limit hit) into an EFBIG error bqhold reports, not a silent death."""
    if hasattr(signal, "SIGXFSZ") and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@contextmanager
def graceful_stop() -> Iterator[StopRequest]:
    """Handle SIGINT/SIGTERM gracefully inside the block (main thread only; elsewhere a no-op)."""
    request = StopRequest()
    if threading.current_thread() is not threading.main_thread():
        yield request
        return
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    for signum in _SIGNALS:
        signal.signal(signum, request.handle)
    try:
        yield request
    finally:
        # Once a stop is under way, keep handling signals: a second one during the flow run's
        # wind-down must still mean "stop at once", not whatever handler came before.
        if request.signum is None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)
