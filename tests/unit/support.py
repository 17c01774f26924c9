"""Plain helpers shared by the reader tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Callable

from bqhold.tasks.core.records import Position, RawBatch

KIB = 1024


def read_all(read: Callable[[Position, int], RawBatch], batch_size: int, limit: int = 10_000) -> list[RawBatch]:
    """Read batch after batch from each returned `end` until a batch says `exhausted`."""
    batches: list[RawBatch] = []
    position = Position()
    for _ in range(limit):
        batch = read(position, batch_size)
        assert batch.start == position
        batches.append(batch)
        position = batch.end
        if batch.exhausted:
            return batches
    raise AssertionError(f"reader never reported exhausted after {limit} batches")


def good_lines(batches: list[RawBatch]) -> list[int]:
    """The `__line` of every good record across batches, in reading order."""
    return [line for batch in batches for line in batch.frame["__line"].to_list()]


def bad_lines(batches: list[RawBatch]) -> list[int]:
    """The line of every quarantined record across batches, in reading order."""
    return [entry.line for batch in batches for entry in batch.quarantined]


def column_values(batches: list[RawBatch], name: str) -> list:
    """The values of column `name` across batches (batches without the column are skipped)."""
    return [value for batch in batches if name in batch.frame.columns for value in batch.frame[name].to_list()]
