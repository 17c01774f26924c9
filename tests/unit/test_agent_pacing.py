"""Pacing an agent's calls: rate windows never exceeded, and a concurrency limit that halves on
throttling and grows back one call at a time (tasks/core/agents/pacing.py), on a made-up clock."""

from __future__ import annotations

import asyncio
import itertools

from bqhold.tasks.core.agents.pacing import AdaptiveLimit, Pacer, RateWindow


def test_a_window_admits_its_limit_then_waits_for_the_oldest_to_leave():
    window = RateWindow(limit=3, span_s=1.0)
    for when in (0.0, 0.1, 0.2):
        assert window.wait_for(1, when) == 0
        window.take(1, when)

    assert window.wait_for(1, 0.5) == 0.5  # the call at 0.0 leaves the window at 1.0
    assert window.wait_for(1, 1.0) == 0


def test_tokens_wait_until_enough_of_the_earlier_ones_have_left():
    window = RateWindow(limit=100, span_s=60.0)
    window.take(60, 0.0)
    window.take(30, 10.0)

    assert window.wait_for(10, 20.0) == 0
    assert window.wait_for(50, 20.0) == 40.0  # the 60 of t=0 must leave (at 60 s)
    assert window.wait_for(500, 20.0) == 50.0  # more than the limit: alone, once the window is empty


def test_a_pacer_spreads_calls_evenly_a_little_under_its_rate_and_starts_none_during_a_pause():
    async def admitted_at(pacer: Pacer, calls: int) -> list[float]:
        loop = asyncio.get_running_loop()
        times = []
        for _ in range(calls):
            await pacer.admit()
            times.append(loop.time())
        return times

    async def scenario() -> tuple[list[float], float]:
        pacer = Pacer.for_limits(per_second=20, per_minute=None, tokens_per_minute=None)
        pacer.clock = asyncio.get_running_loop().time
        first = await admitted_at(pacer, 10)
        pacer.pause(0.3)
        paused_at = pacer.clock()
        return first + await admitted_at(pacer, 1), paused_at

    times, paused_at = asyncio.run(scenario())

    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert min(gaps) >= 1.05 / 20  # 20 a second, spread over 1.05 s (delays on the way to the service)
    assert max(gaps[:9]) < 0.2  # and not slower than that
    assert times[10] - paused_at >= 0.3


def test_concurrency_halves_once_per_round_of_throttling_then_grows_by_one_per_round():
    async def scenario() -> list[int]:
        limit = AdaptiveLimit(8)
        seen = []
        epochs = [await limit.acquire() for _ in range(8)]
        for epoch in epochs[:4]:  # four calls of the same round are throttled: one halving
            await limit.release(epoch, throttled=True)
        seen.append(limit.current)
        for epoch in epochs[4:]:  # the round's other calls succeed: they started before the halving
            await limit.release(epoch, throttled=False)
        seen.append(limit.current)
        for _ in range(4):  # one full round of successes at 4 in flight
            await limit.release(await limit.acquire(), throttled=False)
        seen.append(limit.current)
        return seen

    assert asyncio.run(scenario()) == [4, 4, 5]


def test_no_more_calls_start_than_the_current_limit():
    async def scenario() -> int:
        limit = AdaptiveLimit(3)
        running = peak = 0

        async def call() -> None:
            nonlocal running, peak
            epoch = await limit.acquire()
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.01)
            running -= 1
            await limit.release(epoch, throttled=False)

        await asyncio.gather(*(call() for _ in range(12)))
        return peak

    assert asyncio.run(scenario()) == 3
