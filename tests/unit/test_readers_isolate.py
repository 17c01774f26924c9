"""Isolation: a batch that fails to parse keeps its good records; each bad one is quarantined."""

from __future__ import annotations

import polars as pl

from bqhold.tasks.core.readers.isolate import line_screen, parse_or_isolate, text_batch
from bqhold.tasks.core.readers.lines import LineChunk
from bqhold.tasks.core.records import BatchRequest, Position


def chunk_of(records: list[bytes]) -> LineChunk:
    """A chunk of one-line records on lines 1..n, each 10 bytes apart."""
    n = len(records)
    return LineChunk(
        records=records,
        lines=list(range(1, n + 1)),
        offsets=[10 * i for i in range(n)],
        end_offset=10 * n,
        end_line=n,
        exhausted=True,
    )


def strict_parser(calls: list[int] | None = None):
    """Parses records of the form b"<int>\\n"; any other record makes the whole parse fail."""

    def parse(records: list[bytes]) -> pl.DataFrame:
        if calls is not None:
            calls.append(len(records))
        values = []
        for raw in records:
            text = raw.decode().strip()
            if not text.isdigit():
                raise pl.exceptions.ComputeError(f"cannot parse {text!r}\nsecond line of detail")
            values.append(int(text))
        return pl.DataFrame({"v": values})

    return parse


def no_problem(_raw: bytes) -> None:
    return None


def isolate(records: list[bytes], parse, problem=no_problem, source: str = "f"):
    """parse_or_isolate with a screen that checks each record with `problem`, then parses with `parse`."""
    return parse_or_isolate(source, chunk_of(records), parse, line_screen(problem, parse))


def test_clean_chunk_is_parsed_once_with_line_numbers():
    calls: list[int] = []
    frame, rejected = isolate([b"1\n", b"2\n"], strict_parser(calls))

    assert frame.select("v", "__line").to_dicts() == [{"v": 1, "__line": 1}, {"v": 2, "__line": 2}]
    assert rejected == []
    assert calls == [2]


def test_records_the_parser_rejects_are_isolated_and_the_rest_kept_in_order():
    records = [b"1\n", b"2\n", b"x\n", b"4\n", b"5\n", b"6\n", b"y\n", b"8\n"]

    frame, rejected = isolate(records, strict_parser(), source="src")

    assert frame["v"].to_list() == [1, 2, 4, 5, 6, 8]
    assert frame["__line"].to_list() == [1, 2, 4, 5, 6, 8]
    assert [(entry.line, entry.offset) for entry in rejected] == [(3, 20), (7, 60)]
    assert all(entry.source == "src" for entry in rejected)


def test_isolation_reason_is_one_line_from_the_parser_error():
    _, [entry] = isolate([b"1\n", b"x\n"], strict_parser())

    assert entry.reason == "cannot be read: cannot parse 'x'"
    assert (entry.offset, entry.size) == (10, 2), "where the record's own bytes are"


def test_line_problem_rejects_records_before_parsing_them():
    def problem(raw: bytes) -> str | None:
        return "looks wrong" if raw.startswith(b"x") else None

    frame, rejected = isolate([b"1\n", b"x\n", b"3\n"], strict_parser(), problem)

    assert frame["v"].to_list() == [1, 3]
    assert [(entry.line, entry.reason) for entry in rejected] == [(2, "looks wrong")]


def test_isolation_costs_few_parses_for_few_bad_records():
    calls: list[int] = []
    records = [f"{n}\n".encode() for n in range(1024)]
    records[700] = b"bad\n"

    frame, rejected = isolate(records, strict_parser(calls))

    assert frame.height == 1023
    assert [entry.line for entry in rejected] == [701]
    assert len(calls) <= 2 + 2 * 11  # whole batch, then a bisection: O(log n), not one per record


def test_parser_losing_records_silently_triggers_isolation():
    def lossy(records: list[bytes]) -> pl.DataFrame:
        kept = [int(r) for r in records if r.strip() != b"0"]
        return pl.DataFrame({"v": kept})

    def problem(raw: bytes) -> str | None:
        return "zero" if raw.strip() == b"0" else None

    frame, rejected = isolate([b"1\n", b"0\n", b"2\n"], lossy, problem)

    assert frame["__line"].to_list() == [1, 3]
    assert [entry.line for entry in rejected] == [2]


def test_empty_chunk_gives_an_empty_frame_with_position_columns():
    frame, rejected = isolate([], strict_parser())

    assert frame.height == 0 and frame.columns == ["__line", "__offset"]
    assert rejected == []


def test_text_batch_merges_oversized_and_rejected_records_in_line_order():
    chunk = chunk_of([b"1\n", b"x\n", b"3\n"])
    chunk.lines = [1, 3, 5]
    chunk.oversized = [(2, 5, 5000), (4, 20, 6000)]

    batch = text_batch(
        BatchRequest("f", Position(), 3, 1024), chunk, strict_parser(), line_screen(no_problem, strict_parser())
    )

    assert [entry.line for entry in batch.quarantined] == [2, 3, 4]
    assert "5,000 bytes exceeds the limit of 1,024" in batch.quarantined[0].reason
    assert (batch.quarantined[0].offset, batch.quarantined[0].size) == (5, 5000)
    assert batch.records_read == 5
    assert batch.frame["v"].to_list() == [1, 3]


def test_text_batch_reports_the_span_it_read():
    chunk = chunk_of([b"1\n", b"2\n"])

    batch = text_batch(
        BatchRequest("f", Position(2, 0, 0), 2, 1024), chunk, strict_parser(), line_screen(no_problem, strict_parser())
    )

    assert batch.start == Position(2, 0, 0)
    assert batch.end == Position(2, 20, 2)
    assert batch.bytes_read == 20
    assert batch.exhausted
