"""Nesting depth from a byte scan: strings do not count, the common record costs two counts."""

from __future__ import annotations

import time

import pytest

from bqhold.tasks.core.readers.nesting import MAX_DEPTH, nesting_depth, nesting_problem


@pytest.mark.parametrize(
    ("raw", "depth"),
    [
        (b'{"a": 1}', 1),
        (b'{"a": {"b": [1, [2]]}}', 4),
        (b'{"s": "{{{[[["}', 1),
        (b'{"s": "a \\" {[ b", "t": [{}]}', 3),
        (b"42", 0),
        (b'[{"a": 1}, {"b": [[]]}]', 4),
    ],
)
def test_depth_counts_brackets_outside_strings(raw, depth):
    assert nesting_depth(raw) == depth


def test_a_record_at_the_limit_passes_and_one_level_more_is_refused():
    at_limit = b'{"a": ' * (MAX_DEPTH - 1) + b"{}" + b"}" * (MAX_DEPTH - 1)
    deeper = b"[" + at_limit + b"]"

    assert nesting_problem(at_limit) is None
    assert f"nested {MAX_DEPTH + 1} levels" in (nesting_problem(deeper) or "")


def test_many_brackets_side_by_side_are_not_depth():
    wide = b'{"items": [' + b",".join(b'{"x": [1]}' for _ in range(1000)) + b"]}"

    assert nesting_problem(wide) is None


def test_500_levels_are_judged_in_well_under_a_millisecond_each():
    deep = b'{"a": ' * 499 + b"1" + b"}" * 499
    started = time.perf_counter()
    for _ in range(100):
        problem = nesting_problem(deep)
    assert "nested 499 levels" in problem
    assert time.perf_counter() - started < 0.5
