"""JSONL reader: good records survive in order, each bad line is quarantined with its position."""

from __future__ import annotations

import json

import polars as pl
import pytest

from bqhold.tasks.core.readers.jsonl import line_problem, read_jsonl_batch
from bqhold.tasks.core.readers.originals import original
from bqhold.tasks.core.records import BatchRequest, Position
from tests.unit.support import KIB, bad_lines, column_values, good_lines, read_all

LIMIT = 64 * KIB
HINT = " (--string-columns {} would keep it as text)"

# One line per entry; the comment is the 1-based line number.
MIXED_LINES = [
    b'{"id": 1}',  # 1
    b"{bad json",  # 2
    b"[1, 2, 3]",  # 3
    b"",  # 4 blank
    b"42",  # 5
    b'{"id": 2}',  # 6
    b'{"id": "\xff\xfe"}',  # 7 invalid UTF-8
    b"   ",  # 8 whitespace only
    b'{"id": 3}',  # 9
]
MIXED = b"\n".join(MIXED_LINES) + b"\n"


def offset_of_line(data: bytes, line: int) -> int:
    """The byte offset at which 1-based `line` starts in `data`."""
    return sum(len(chunk) + 1 for chunk in data.split(b"\n")[: line - 1])


@pytest.fixture
def read_jsonl(write_bytes):
    """Write `data` as a .jsonl file; return a reader `(position, rows) -> RawBatch` over it."""

    def make(data: bytes, max_record_bytes: int = LIMIT, name: str = "input.jsonl", text=frozenset()):
        path = write_bytes(name, data)

        def read(start: Position, max_rows: int):
            return read_jsonl_batch(BatchRequest(path, start, max_rows, max_record_bytes, text))

        read.path = path
        return read

    return make


def test_good_records_around_bad_lines_are_all_kept_in_order(read_jsonl):
    batch = read_jsonl(MIXED)(Position(), 100)

    assert batch.frame["id"].to_list() == [1, 2, 3]
    assert batch.frame["__line"].to_list() == [1, 6, 9]


def test_each_bad_line_is_quarantined_with_line_offset_and_reason(read_jsonl):
    read = read_jsonl(MIXED)
    batch = read(Position(), 100)

    found = {entry.line: entry for entry in batch.quarantined}
    assert sorted(found) == [2, 3, 5, 7]
    for line, entry in found.items():
        assert entry.offset == offset_of_line(MIXED, line)
        assert entry.source == read.path
    assert found[2].reason.startswith("malformed JSON")
    assert "array" in found[3].reason
    assert "JSON object" in found[5].reason and "number" in found[5].reason
    assert "UTF-8" in found[7].reason


def test_quarantined_entries_lead_back_to_the_exact_bytes_of_the_bad_record(read_jsonl):
    batch = read_jsonl(MIXED)(Position(), 100)

    kept = {entry.line: original(entry, 1024) for entry in batch.quarantined}
    assert kept[2] == b"{bad json"
    assert kept[7] == b'{"id": "\xff\xfe"}'  # invalid bytes kept as they are, not escaped


def test_blank_lines_are_neither_records_nor_quarantined(read_jsonl):
    batch = read_jsonl(b'\n{"a": 1}\n\n   \n\t\n{"a": 2}\n\n')(Position(), 100)

    assert batch.frame["__line"].to_list() == [2, 6]
    assert batch.quarantined == []
    assert batch.records_read == 2


def test_records_read_counts_good_and_bad_records(read_jsonl):
    batch = read_jsonl(MIXED)(Position(), 100)

    assert batch.records_read == 3 + 4


def test_whole_file_in_one_batch_ends_at_file_end_and_is_exhausted(read_jsonl):
    batch = read_jsonl(MIXED)(Position(), 100)

    assert batch.end == Position(0, len(MIXED), len(MIXED_LINES))
    assert batch.exhausted
    assert batch.bytes_read == len(MIXED)


@pytest.mark.parametrize("batch_size", [1, 2, 3, 4, 7, 100])
def test_batches_from_returned_end_yield_every_record_exactly_once(read_jsonl, batch_size):
    batches = read_all(read_jsonl(MIXED), batch_size)

    assert good_lines(batches) == [1, 6, 9]
    assert bad_lines(batches) == [2, 3, 5, 7]
    assert sum(batch.records_read for batch in batches) == 7
    assert batches[-1].end.offset == len(MIXED)


@pytest.mark.parametrize("trailing_newline", [True, False])
@pytest.mark.parametrize("batch_size", [1, 2, 5, 10, 11])
def test_file_ending_at_a_batch_boundary_loses_and_repeats_nothing(read_jsonl, batch_size, trailing_newline):
    data = b"\n".join(json.dumps({"n": n}).encode() for n in range(10)) + (b"\n" if trailing_newline else b"")
    batches = read_all(read_jsonl(data), batch_size)

    assert column_values(batches, "n") == list(range(10))
    assert good_lines(batches) == list(range(1, 11))
    assert batches[-1].end.offset == len(data)


def test_batch_that_reads_the_last_record_reports_exhausted(read_jsonl):
    data = b'{"n": 1}\n{"n": 2}\n'
    read = read_jsonl(data)

    first = read(Position(), 2)

    assert first.exhausted
    assert first.frame["n"].to_list() == [1, 2]


def test_batch_that_stops_before_the_end_is_not_exhausted(read_jsonl):
    first = read_jsonl(b'{"n": 1}\n{"n": 2}\n')(Position(), 1)

    assert not first.exhausted
    assert first.end == Position(0, 9, 1)


def test_last_line_without_newline_is_read(read_jsonl):
    batch = read_jsonl(b'{"n": 1}\n{"n": 2}')(Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]
    assert batch.frame["__line"].to_list() == [1, 2]


def test_crlf_line_endings_are_accepted(read_jsonl):
    batch = read_jsonl(b'{"n": 1}\r\n{"n": 2}\r\n')(Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]
    assert batch.quarantined == []


def test_resuming_from_a_position_numbers_lines_from_there(read_jsonl):
    data = b'{"n": 1}\n{"n": 2}\n{"n": 3}\n'
    read = read_jsonl(data)
    second = read(Position(0, 9, 1), 10)

    assert second.frame["n"].to_list() == [2, 3]
    assert second.frame["__line"].to_list() == [2, 3]


def test_end_position_carries_the_file_index(write_bytes):
    path = write_bytes("x.jsonl", b'{"n": 1}\n')

    batch = read_jsonl_batch(BatchRequest(path, Position(4, 0, 0), 10, LIMIT))

    assert batch.end.file_index == 4


def test_huge_line_is_skipped_and_reported_with_its_size(read_jsonl):
    huge = b'{"blob": "' + b"x" * (5 * 1024 * KIB) + b'"}\n'
    data = b'{"n": 1}\n' + huge + b'{"n": 2}\n'

    batch = read_jsonl(data, max_record_bytes=64 * KIB)(Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]
    assert batch.frame["__line"].to_list() == [1, 3]
    [entry] = batch.quarantined
    assert (entry.line, entry.offset) == (2, 9)
    assert f"{len(huge):,}" in entry.reason
    assert "65,536" in entry.reason
    assert entry.size == len(huge)  # its span, to be streamed into quarantine, never held


def test_huge_last_line_without_newline_is_reported_with_its_full_size(read_jsonl):
    huge = b'{"blob": "' + b"x" * (300 * KIB) + b'"}'
    data = b'{"n": 1}\n' + huge

    batch = read_jsonl(data, max_record_bytes=64 * KIB)(Position(), 10)

    [entry] = batch.quarantined
    assert f"{len(huge):,}" in entry.reason
    assert batch.end.offset == len(data)
    assert batch.exhausted


def test_huge_line_at_a_batch_boundary_is_reported_once(read_jsonl):
    huge = b'{"blob": "' + b"x" * (200 * KIB) + b'"}\n'
    data = b'{"n": 1}\n' + huge + b'{"n": 2}\n' + huge + b'{"n": 3}\n'

    batches = read_all(read_jsonl(data, max_record_bytes=64 * KIB), 1)

    assert column_values(batches, "n") == [1, 2, 3]
    assert bad_lines(batches) == [2, 4]


def test_record_exactly_at_the_size_limit_is_accepted(read_jsonl):
    limit = 1 * KIB
    line = b'{"s": "' + b"x" * (limit - 10) + b'"}\n'
    assert len(line) == limit

    batch = read_jsonl(line + line + b"x" + line, max_record_bytes=limit)(Position(), 10)

    assert batch.frame.height == 2
    [entry] = batch.quarantined
    assert entry.line == 3 and f"{limit + 1:,}" in entry.reason


def test_type_clash_within_a_batch_quarantines_the_clashing_record_only(read_jsonl):
    data = b'{"a": {"b": 1}, "k": 1}\n{"a": [1], "k": 2}\n{"c": 3, "k": 3}\n{"a": {"b": 4}, "k": 4}\n'

    batch = read_jsonl(data)(Position(), 10)

    assert batch.frame["k"].to_list() == [1, 3, 4]
    assert batch.frame["__line"].to_list() == [1, 3, 4]
    [entry] = batch.quarantined
    assert (entry.line, entry.offset) == (2, 24)
    assert entry.reason == "field 'a': expected an object, got an array"


def test_scalar_versus_list_clash_keeps_the_records_on_both_sides(read_jsonl):
    data = b'{"a": 1}\n{"a": [1]}\n{"a": 2}\n'

    batch = read_jsonl(data)(Position(), 10)

    assert batch.frame["a"].to_list() == [1, 2]
    assert [entry.line for entry in batch.quarantined] == [2]


def test_several_bad_records_in_a_large_batch_are_each_isolated(read_jsonl):
    lines = [json.dumps({"n": n}).encode() for n in range(200)]
    for bad in (0, 57, 58, 199):
        lines[bad] = b'{"n": oops}'
    data = b"\n".join(lines) + b"\n"

    batch = read_jsonl(data)(Position(), 1000)

    assert [entry.line for entry in batch.quarantined] == [1, 58, 59, 200]
    assert batch.frame.height == 196
    assert batch.frame["__line"].is_sorted()


def test_two_objects_on_one_line_are_quarantined(read_jsonl):
    batch = read_jsonl(b'{"a": 1}{"a": 2}\n{"a": 3}\n')(Position(), 10)

    assert batch.frame["a"].to_list() == [3]
    assert [entry.line for entry in batch.quarantined] == [1]


def test_nested_objects_are_read_as_structs(read_jsonl):
    batch = read_jsonl(b'{"user": {"id": 7, "name": "x"}}\n')(Position(), 10)

    assert batch.frame["user"].to_list() == [{"id": 7, "name": "x"}]


def test_only_bad_lines_give_an_empty_frame_with_a_line_column(read_jsonl):
    batch = read_jsonl(b"nope\n[1]\n")(Position(), 10)

    assert batch.frame.height == 0
    assert "__line" in batch.frame.columns
    assert len(batch.quarantined) == 2


def test_reading_past_the_end_gives_an_empty_exhausted_batch(read_jsonl):
    data = b'{"n": 1}\n'

    batch = read_jsonl(data)(Position(0, len(data), 1), 10)

    assert batch.frame.height == 0
    assert batch.exhausted
    assert batch.end == Position(0, len(data), 1)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a": 1}\n', None),
        (b"{}\n", None),
        (b'{"a": \n', "malformed JSON"),
        (b'"text"\n', "found a string"),
        (b"true\n", "found a boolean"),
        (b"[]\n", "found an array"),
        (b"null\n", "found null"),
        (b"\xc3\x28\n", "not valid UTF-8 (byte 0"),
    ],
)
def test_line_problem_explains_why_a_line_is_not_an_object(raw, expected):
    problem = line_problem(raw)

    if expected is None:
        assert problem is None
    else:
        assert expected in problem


def jsonl(*records: object) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def test_true_among_integers_is_quarantined_not_stored_as_one(read_jsonl):
    batch = read_jsonl(jsonl({"a": 1}, {"a": True}, {"a": 3}))(Position(), 10)

    assert batch.frame["a"].to_list() == [1, 3] and batch.frame.schema["a"] == pl.Int64
    [entry] = batch.quarantined
    assert (entry.line, entry.reason) == (2, "field 'a': expected INT64, got true" + HINT.format("a"))


def test_a_string_among_objects_is_quarantined_and_the_objects_keep_their_shape(read_jsonl):
    records = [{"o": {"p": i}} for i in range(9)]
    records[4] = {"o": "x"}

    batch = read_jsonl(jsonl(*records))(Position(), 100)

    assert batch.frame.schema["o"] == pl.Struct({"p": pl.Int64})
    assert [entry.reason for entry in batch.quarantined] == ["field 'o': expected an object, got a string"]
    assert bad_lines([batch]) == [5]


@pytest.mark.parametrize(
    ("records", "kept", "reason"),
    [
        ([{"a": "x"}, {"a": 1}, {"a": "y"}], ["x", "1", "y"], None),  # a STRING takes a number as its text
        ([{"a": 1}, {"a": "x"}, {"a": 2}], [1, 2], "field 'a': expected INT64, got a string" + HINT.format("a")),
        ([{"a": 1}, {"a": 1.5}], [1.0, 1.5], None),  # integers widen to floats
        ([{"a": 1.5}, {"a": 2**53 + 1}], [1.5], f"field 'a': expected FLOAT64, got {2**53 + 1}" + HINT.format("a")),
        ([{"a": {"b": 1}}, {"a": {"b": "x"}}, {"a": {"b": 2}}], [{"b": 1}, {"b": 2}], "field 'a.b': expected INT64"),
        ([{"a": "x"}, {"a": "y"}, {"a": [1]}], ["x", "y"], "field 'a': expected a string, got an array"),
    ],
    ids=[
        "string-takes-number",
        "number-refuses-string",
        "int-widens",
        "float-loses-digits",
        "nested",
        "array",
    ],
)
def test_one_kind_per_field_in_a_batch(read_jsonl, records, kept, reason):
    batch = read_jsonl(jsonl(*records))(Position(), 10)

    assert batch.frame["a"].to_list() == kept
    assert [entry.reason[: len(reason)] for entry in batch.quarantined] == ([reason] if reason else [])


def test_an_array_of_mixed_values_is_kept_as_its_json_text(read_jsonl):
    batch = read_jsonl(jsonl({"t": [1, "a", True]}, {"t": [2]}, {"t": None}))(Position(), 10)

    assert batch.quarantined == []
    assert [None if text is None else json.loads(text) for text in batch.frame["t"]] == [[1, "a", True], [2], None]


def test_a_stray_value_of_another_kind_in_an_array_quarantines_its_record_only(read_jsonl):
    lines = [{"lines": [{"qty": 1}, {"qty": 2}]} for _ in range(5)]
    lines[3]["lines"][1]["qty"] = "two"

    batch = read_jsonl(jsonl(*lines))(Position(), 10)

    assert batch.frame.schema["lines"] == pl.List(pl.Struct({"qty": pl.Int64}))
    assert batch.frame.height == 4
    [entry] = batch.quarantined
    assert entry.line == 4
    assert entry.reason == (
        "field 'lines[].qty': expected INT64, got a string (--string-columns lines would keep it as text)"
    )


def test_string_columns_keep_an_array_as_its_json_text(read_jsonl):
    batch = read_jsonl(jsonl({"t": [1, 2]}, {"t": [3, "x"]}, {"t": [4]}), text=frozenset({"t"}))(Position(), 10)

    assert batch.quarantined == []
    assert [json.loads(text) for text in batch.frame["t"]] == [[1, 2], [3, "x"], [4]]


def test_string_columns_take_any_scalar_as_text(read_jsonl):
    batch = read_jsonl(jsonl({"a": 1}, {"a": True}, {"a": "x"}, {"a": 1.5}), text=frozenset({"a"}))(Position(), 10)

    assert batch.quarantined == []
    assert batch.frame["a"].to_list() == ["1", "true", "x", "1.5"]


def test_a_batch_whose_kinds_agree_is_parsed_once_with_its_own_types(read_jsonl):
    data = jsonl({"s": "02100", "n": 1, "f": 1.5, "b": True, "o": {"p": "x"}, "l": ["a"]}, {"s": "x", "n": None})

    batch = read_jsonl(data)(Position(), 10)

    assert batch.quarantined == []
    assert batch.frame.drop("__line", "__offset").schema == pl.Schema(
        {
            "s": pl.String,
            "n": pl.Int64,
            "f": pl.Float64,
            "b": pl.Boolean,
            "o": pl.Struct({"p": pl.String}),
            "l": pl.List(pl.String),
        }
    )
