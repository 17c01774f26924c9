"""Block reads: the same records, lines, offsets, end and exhaustion as reading line by line, or none."""

from __future__ import annotations

import io
import random

import pytest

from bqhold.tasks.core.readers.blocks import read_block
from bqhold.tasks.core.readers.lines import read_records


def generated(seed: int) -> bytes:
    """Lines of records of varied sizes, sometimes blank, with CRLF or without a final newline."""
    rng = random.Random(seed)
    lines = []
    for _ in range(rng.randint(0, 40)):
        kind = rng.random()
        if kind < 0.03:
            lines.append(b"")
        elif kind < 0.05:
            lines.append(b"  ")
        elif kind < 0.1:
            lines.append(b'{"x":"' + b"y" * rng.randint(50, 300) + b'"}')
        else:
            lines.append(b'{"a":%d}' % rng.randint(0, 10 ** rng.randint(0, 6)))
    newline = b"\r\n" if rng.random() < 0.1 else b"\n"
    data = newline.join(lines) + (newline if rng.random() < 0.7 else b"")
    return b"\xef\xbb\xbf" + data if rng.random() < 0.05 else data


@pytest.mark.parametrize("seed", range(60))
def test_a_block_holds_what_reading_line_by_line_returns_batch_after_batch(seed: int) -> None:
    data = generated(seed)
    rng = random.Random(seed)
    max_rows, max_record_bytes = rng.choice([5, 10, 20]), rng.choice([100, 200, 1024])
    max_bytes = rng.choice([None, 30, 100, 1000])
    offset = line = 0
    while True:
        expected = read_records(io.BytesIO(data), offset, line, max_rows, max_record_bytes, max_bytes=max_bytes)
        block = read_block(io.BytesIO(data), offset, line, max_rows, max_record_bytes, max_bytes)
        if block is not None:
            got = block.chunk()
            assert (got.records, got.lines, got.offsets) == (expected.records, expected.lines, expected.offsets)
            assert (got.end_offset, got.end_line, got.exhausted) == (
                expected.end_offset,
                expected.end_line,
                expected.exhausted,
            )
            assert block.sizes().tolist() == [len(record) for record in expected.records]
        if expected.exhausted:
            return
        offset, line = expected.end_offset, expected.end_line


@pytest.mark.parametrize(
    ("data", "offset"),
    [
        (b'\xef\xbb\xbf{"a":1}\n', 0),  # a byte order mark: skipped by the line reader
        (b'{"a":1}\n\n{"a":2}\n', 0),  # a blank line: a line that is no record
        (b'{"a":1}\n  {"a":2}\n', 0),  # a line starting with blanks (it might be all blank)
        (b'{"a":1}\n{"a":"' + b"x" * 200 + b'"}\n', 0),  # a record over the limit: skipped, reported
        (b'{"a":1}\n{"a":"' + b"x" * 2000 + b'"}\n{"a":3}\n', 0),  # ... also one the first read ends inside
        (b"", 0),  # nothing to read
    ],
)
def test_whatever_the_line_reader_treats_specially_is_left_to_it(data: bytes, offset: int) -> None:
    assert read_block(io.BytesIO(data), offset, 0, 10, 100, None) is None


def test_a_block_is_read_in_few_reads_and_stops_at_the_batch_size() -> None:
    data = b"".join(b'{"n":%d}\n' % n for n in range(100_000))
    reads: list[int] = []

    class Counting(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(size or -1)
            return super().read(size)

    block = read_block(Counting(data), 0, 0, 50_000, 1024, None)

    assert block is not None and block.count == 50_000
    assert block.lines()[[0, -1]].tolist() == [1, 50_000] and not block.exhausted
    assert len(reads) <= 3  # a probe, the read it sizes, and a look past the end at most
