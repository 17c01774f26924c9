"""Spans: they lead a rejected row back to its source bytes."""

from __future__ import annotations

from array import array

from bqhold.tasks.core.records import Spans


def test_spans_give_the_size_of_the_record_at_an_offset():
    spans = Spans(array("q", [0, 10, 25]), array("q", [10, 15, 7]))

    assert [spans.size_at(offset) for offset in (0, 10, 25)] == [10, 15, 7]
    assert spans.size_at(11) is None and spans.size_at(99) is None and spans.size_at(None) is None


def test_no_spans_know_no_record():
    assert Spans().size_at(0) is None
