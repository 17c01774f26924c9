"""The progress view is updated at most once per interval, whatever the batch rate."""

from __future__ import annotations

from bqhold.tasks.core.throttle import Throttle


def test_the_first_call_passes_then_one_per_interval():
    now = [0.0]
    throttle = Throttle(10.0, clock=lambda: now[0])

    passed = []
    for step in range(100):  # a batch every 0.5 s for 50 s
        now[0] = step * 0.5
        passed.append(throttle.ready())

    assert passed[0] is True
    assert sum(passed) == 5  # at 0, 10, 20, 30 and 40 s
