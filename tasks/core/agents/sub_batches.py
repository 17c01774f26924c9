"""Running a model over a chunk of inputs in sub-batches that fit in memory: shortest inputs
first (padding to the longest of a sub-batch wastes least), the sub-batch halved each time one
runs out of memory, and the size that worked handed back to be kept for the next chunk."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


def out_of_memory(exc: BaseException) -> bool:
    """Whether `exc` says a model ran out of memory: MemoryError, CUDA's OutOfMemoryError (a
    RuntimeError), or the CPU allocator's "can't allocate memory"."""
    if isinstance(exc, MemoryError):
        return True
    text = str(exc).lower()
    return isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)


def by_length(inputs: Sequence[In], length: Callable[[In], int] = len) -> list[int]:
    """The inputs' indexes, shortest first."""
    return sorted(range(len(inputs)), key=lambda index: length(inputs[index]))


def run_in_sub_batches(
    run: Callable[[list[In]], list[Out]],
    inputs: Sequence[In],
    size: int,
    on_smaller: Callable[[int], None] = lambda size: None,
) -> tuple[list[Out], int]:
    """`run` over `inputs` in sub-batches of `size`, shortest first; each sub-batch that runs out
    of memory is tried again at half the size (`on_smaller` is told). Returns the outputs in the
    inputs' order and the size that worked; out of memory at a size of 1 is raised as MemoryError."""
    order = by_length(inputs)
    outputs: list[Out | None] = [None] * len(inputs)
    start = 0
    while start < len(order):
        picked = order[start : start + size]
        try:
            results = run([inputs[index] for index in picked])
        except (MemoryError, RuntimeError) as exc:
            if not out_of_memory(exc):
                raise
            if size == 1:
                raise MemoryError(f"one input alone does not fit in memory ({exc})") from exc
            size = max(1, size // 2)
            on_smaller(size)
            continue
        for index, result in zip(picked, results, strict=True):
            outputs[index] = result
        start += len(picked)
    return outputs, size  # type: ignore[return-value]
