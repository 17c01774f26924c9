"""Let something through at most once per interval: a view updated often enough, not every time."""

from __future__ import annotations

import time
from collections.abc import Callable


class Throttle:
    """`ready()` is true the first time, then once `interval_s` has passed since it last was."""

    def __init__(self, interval_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self.clock = interval_s, clock
        self._last: float | None = None

    def ready(self) -> bool:
        """Whether the throttled thing may happen now (and, if so, counts it as done now)."""
        now = self.clock()
        if self._last is not None and now - self._last < self.interval_s:
            return False
        self._last = now
        return True
