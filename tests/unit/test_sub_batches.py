"""A model's chunk in sub-batches that fit: shortest first, halved on out of memory, the size
that worked kept (tasks/core/agents/sub_batches.py), with a 'model' whose memory is a budget."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.agents.sub_batches import out_of_memory, run_in_sub_batches


def model_with_room_for(characters: int):
    """A model that holds a sub-batch padded to its longest text, and fails beyond `characters`."""
    seen: list[list[str]] = []

    def run(texts: list[str]) -> list[int]:
        seen.append(texts)
        if len(texts) * max(map(len, texts)) > characters:
            raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory")
        return [len(text) for text in texts]

    return run, seen


def test_the_sub_batch_is_halved_until_it_fits_and_outputs_keep_the_inputs_order():
    texts = ["x" * n for n in (9, 1, 5, 3, 7, 2, 8, 4)]
    run, seen = model_with_room_for(characters=20)
    smaller = []

    outputs, size = run_in_sub_batches(run, texts, size=8, on_smaller=smaller.append)

    assert outputs == [9, 1, 5, 3, 7, 2, 8, 4]
    assert smaller == [4, 2] and size == 2
    assert seen[-1] == ["x" * 8, "x" * 9]  # shortest first: the longest come last, together


def test_a_text_too_large_alone_is_a_memory_error_and_other_errors_pass_through():
    run, _ = model_with_room_for(characters=3)
    with pytest.raises(MemoryError, match="one input alone"):
        run_in_sub_batches(run, ["abcd"], size=4)

    def broken(texts: list[str]) -> list[int]:
        raise RuntimeError("shape mismatch")

    with pytest.raises(RuntimeError, match="shape mismatch"):
        run_in_sub_batches(broken, ["a"], size=1)


def test_what_counts_as_out_of_memory():
    assert out_of_memory(MemoryError())
    assert out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not out_of_memory(RuntimeError("expected scalar type Float"))
    assert not out_of_memory(ValueError("out of memory"))
