"""Bounded line reading: records with their line and offset, over-long lines skipped and reported."""

from __future__ import annotations

import io

from bqhold.tasks.core.readers.lines import read_records


def read(
    data: bytes,
    offset: int = 0,
    line: int = 0,
    max_rows: int = 100,
    max_record_bytes: int = 1024,
    quoted: bool = False,
    max_bytes: int | None = None,
):
    return read_records(io.BytesIO(data), offset, line, max_rows, max_record_bytes, quoted=quoted, max_bytes=max_bytes)


def test_records_come_with_their_line_and_offset():
    chunk = read(b"a\nbb\nccc\n")

    assert chunk.records == [b"a\n", b"bb\n", b"ccc\n"]
    assert chunk.lines == [1, 2, 3]
    assert chunk.offsets == [0, 2, 5]
    assert (chunk.end_offset, chunk.end_line) == (9, 3)
    assert chunk.exhausted


def test_blank_lines_are_skipped_but_counted_as_lines():
    chunk = read(b"\na\n  \n\nb\n")

    assert chunk.records == [b"a\n", b"b\n"]
    assert chunk.lines == [2, 5]
    assert chunk.end_line == 5


def test_max_rows_counts_records_not_blank_lines():
    chunk = read(b"a\n\n\nb\nc\n", max_rows=2)

    assert chunk.records == [b"a\n", b"b\n"]
    assert (chunk.end_offset, chunk.end_line) == (6, 4)
    assert not chunk.exhausted


def test_reading_resumes_from_an_offset_and_line():
    chunk = read(b"a\nbb\nccc\n", offset=2, line=1)

    assert chunk.records == [b"bb\n", b"ccc\n"]
    assert chunk.lines == [2, 3]
    assert chunk.offsets == [2, 5]


def test_exhausted_when_the_batch_ends_exactly_at_the_end_of_file():
    chunk = read(b"a\nb\n", max_rows=2)

    assert chunk.exhausted


def test_not_exhausted_when_only_blank_lines_remain_then_the_next_read_is():
    data = b"a\n\n\n"
    first = read(data, max_rows=1)

    second = read(data, first.end_offset, first.end_line)

    assert not first.exhausted
    assert second.records == [] and second.exhausted
    assert second.end_offset == len(data)


def test_over_long_line_is_skipped_with_its_position_and_size():
    long_line = b"x" * 5000 + b"\n"
    chunk = read(b"a\n" + long_line + b"b\n", max_record_bytes=100)

    assert chunk.records == [b"a\n", b"b\n"]
    assert chunk.lines == [1, 3]
    assert chunk.oversized == [(2, 2, len(long_line))]


def test_over_long_line_larger_than_the_skip_chunk_is_skipped_whole():
    long_line = b"y" * (3 * 1024 * 1024 + 17) + b"\n"
    chunk = read(long_line + b"z\n", max_record_bytes=1024)

    assert chunk.records == [b"z\n"]
    assert chunk.oversized[0][2] == len(long_line)
    assert chunk.offsets == [len(long_line)]


def test_over_long_lines_do_not_count_towards_max_rows():
    chunk = read(b"x" * 50 + b"\n" + b"a\n", max_rows=1, max_record_bytes=10)

    assert chunk.records == [b"a\n"]
    assert len(chunk.oversized) == 1


def test_continuation_joins_lines_into_one_record():
    chunk = read(b'1,"a\nb"\n2,c\n', quoted=True)

    assert chunk.records == [b'1,"a\nb"\n', b"2,c\n"]
    assert chunk.lines == [1, 3]
    assert chunk.offsets == [0, 8]
    assert chunk.end_line == 3


def test_continued_record_longer_than_the_limit_is_skipped_whole():
    record = b'1,"' + b"a\n" * 40 + b'"\n'
    chunk = read(record + b"2,c\n", max_record_bytes=30, quoted=True)

    assert chunk.records == [b"2,c\n"]
    assert chunk.lines == [42]
    assert chunk.oversized == [(1, 0, len(record))]


def test_a_byte_budget_ends_the_chunk_after_the_record_that_reaches_it():
    data = b"".join(b"%02d" % n + b"x" * 7 + b"\n" for n in range(10))  # ten 10-byte lines

    chunk = read(data, max_bytes=25)

    assert len(chunk.records) == 3 and chunk.end_offset == 30 and not chunk.exhausted


def test_a_byte_budget_smaller_than_one_record_still_reads_that_record():
    chunk = read(b"x" * 100 + b"\n" + b"y\n", max_bytes=1)

    assert chunk.records == [b"x" * 100 + b"\n"]
