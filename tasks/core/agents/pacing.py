"""Pacing an agent's calls: rate windows that are never exceeded, a pause a service asks for
(Retry-After), and a concurrency limit that halves when throttled and grows back slowly (AIMD).

All on one asyncio event loop; `clock` is injectable so the logic tests without sleeping.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

# A service counts a call when it arrives, a little after it starts here, and not every call takes
# as long to arrive: calls are spread over a window this much longer than the declared one, so
# that up to 5% of it in delays (50 ms of a second) never puts one call too many in the service's.
MARGIN = 1.05


@dataclass
class RateWindow:
    """At most `limit` units (requests, or tokens) started within any `span_s` seconds, and (for
    requests) at least `spacing_s` between two starts, so they do not arrive in bursts."""

    limit: float
    span_s: float
    spacing_s: float = 0.0
    spent: deque[tuple[float, float]] = field(default_factory=deque)  # (when, units)
    total: float = 0.0

    @classmethod
    def for_calls(cls, per_span: float, span_s: float) -> RateWindow:
        """A window of calls at a declared rate, evenly spaced, with the margin for delays."""
        span = span_s * MARGIN
        return cls(per_span, span, spacing_s=span / per_span)

    def wait_for(self, units: float, now: float) -> float:
        """Seconds until `units` more fit in the window (0: now)."""
        while self.spent and self.spent[0][0] <= now - self.span_s:
            self.total -= self.spent.popleft()[1]
        spaced = self.spent[-1][0] + self.spacing_s - now if self.spent else 0.0
        if self.total + units <= self.limit or not self.spent:
            return max(0.0, spaced)  # an empty window admits even a chunk larger than the limit, alone
        # The oldest entries leave one by one: wait until enough of them have left.
        needed, freed = self.total + units - self.limit, 0.0
        for when, spent in self.spent:
            freed += spent
            if freed >= needed:
                return when + self.span_s - now
        return self.spent[-1][0] + self.span_s - now

    def take(self, units: float, now: float) -> None:
        self.spent.append((now, units))
        self.total += units


class Pacer:
    """Admits calls so that no rate window is exceeded and no call starts during a pause the
    service asked for. Calls are admitted one at a time, in the order they asked."""

    def __init__(
        self,
        windows: list[RateWindow],
        tokens: RateWindow | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.windows, self.tokens, self.clock = windows, tokens, clock
        self.paused_until = 0.0
        self._turn = asyncio.Lock()

    @classmethod
    def for_limits(cls, per_second: float | None, per_minute: float | None, tokens_per_minute: float | None) -> Pacer:
        """The pacer of an agent's declared rates (tokens in their own window, see `admit`)."""
        windows = [RateWindow.for_calls(rate, span) for rate, span in ((per_second, 1.0), (per_minute, 60.0)) if rate]
        return cls(windows, RateWindow(tokens_per_minute, 60.0 * MARGIN) if tokens_per_minute else None)

    def pause(self, seconds: float) -> None:
        """Start no call for `seconds` from now (the service's Retry-After)."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    async def admit(self, tokens: float = 0) -> None:
        """Wait until one more call (estimated to cost `tokens`) may start, and count it."""
        async with self._turn:
            while True:
                now = self.clock()
                waits = [self.paused_until - now, *(window.wait_for(1, now) for window in self.windows)]
                if self.tokens is not None:
                    waits.append(self.tokens.wait_for(tokens, now))
                wait = max(waits)
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            for window in self.windows:
                window.take(1, now)
            if self.tokens is not None:
                self.tokens.take(tokens, now)


class AdaptiveLimit:
    """A concurrency limit between 1 and `ceiling`: halved when the service throttles (once per
    round: calls started before the last halving do not halve it again), grown by one after
    `current` successes in a row of calls started since (about one round trip)."""

    def __init__(self, ceiling: int) -> None:
        self.ceiling = ceiling
        self.current = ceiling
        self.in_flight = 0
        self.lowest = ceiling
        self._epoch = 0  # counts the halvings; a call remembers the epoch it started in
        self._successes = 0
        self._changed = asyncio.Condition()

    async def acquire(self) -> int:
        """Wait for a slot; return the epoch the call starts in (hand it back to `release`)."""
        async with self._changed:
            await self._changed.wait_for(lambda: self.in_flight < self.current)
            self.in_flight += 1
            return self._epoch

    async def release(self, epoch: int, throttled: bool) -> None:
        """A call that started in `epoch` ended, `throttled` or not."""
        async with self._changed:
            self.in_flight -= 1
            if throttled and epoch == self._epoch:
                self.current = max(1, self.current // 2)
                self.lowest = min(self.lowest, self.current)
                self._epoch += 1
                self._successes = 0
            elif not throttled and epoch == self._epoch:
                self._successes += 1
                if self._successes >= self.current and self.current < self.ceiling:
                    self.current += 1
                    self._successes = 0
            self._changed.notify_all()
