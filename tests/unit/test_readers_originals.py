"""Original bytes of quarantined records, read back from their source without their line break."""

from __future__ import annotations

import io

import pytest

from bqhold.tasks.core.readers.originals import ByteRange, csv_header, original
from bqhold.tasks.core.records import QuarantineEntry, RecordFormat


def entry(path: str, offset: int, size: int, fmt: RecordFormat = RecordFormat.JSONL) -> QuarantineEntry:
    return QuarantineEntry(path, 1, offset, "bad", fmt, size)


@pytest.mark.parametrize(("ending", "kept"), [(b"\n", b"{bad"), (b"\r\n", b"{bad"), (b"", b"{bad")])
def test_a_line_comes_back_without_the_break_that_ended_it(write_bytes, ending, kept):
    path = write_bytes("a.jsonl", b'{"ok": 1}\n{bad' + ending)

    assert original(entry(path, 10, 4 + len(ending)), 1024) == kept


def test_a_multi_line_csv_record_keeps_its_inner_line_breaks(write_bytes):
    record = b'2,"one\ntwo\n"\n'
    path = write_bytes("a.csv", b"id,text\n" + record)

    assert original(entry(path, 8, len(record), RecordFormat.CSV), 1024) == b'2,"one\ntwo\n"'
    assert csv_header(path) == b"id,text"


def test_an_array_element_comes_back_without_the_blanks_after_it(write_bytes):
    path = write_bytes("a.json", b'[{"n": 1}  \n , 2]')

    assert original(entry(path, 1, 11, RecordFormat.JSON_ARRAY), 1024) == b'{"n": 1}'


def test_a_record_over_the_inline_limit_is_a_span_that_streams_it(write_bytes):
    big = b"x" * 5000
    path = write_bytes("a.jsonl", b"{}\n" + big + b"\n")

    found = original(entry(path, 3, len(big) + 1), 1024)

    assert found == ByteRange(path, 3, len(big))
    out = io.BytesIO()
    found.copy_to(out)
    assert out.getvalue() == big


def test_bytes_in_hand_are_used_as_they_are():
    assert original(QuarantineEntry("gone.parquet", 1, 0, "bad", RecordFormat.ROWS, record=b'{"n": 1}'), 10) == (
        b'{"n": 1}'
    )
