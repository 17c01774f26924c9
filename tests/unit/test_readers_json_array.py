"""JSON array files: elements are records, read from byte offsets, bad ones quarantined by index."""

from __future__ import annotations

import json

import pytest

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.readers import estimate_bytes_per_row, record_format
from bqhold.tasks.core.readers import json_array as json_array_module
from bqhold.tasks.core.readers.json_array import read_json_array_batch, starts_with_array
from bqhold.tasks.core.readers.originals import original
from bqhold.tasks.core.records import BatchRequest, Position, RecordFormat
from tests.unit.support import bad_lines, column_values, good_lines, read_all

MIXED = (
    b'\xef\xbb\xbf \n[ {"id": 1, "s": "a,]}\\"b"},\n'  # 1: separators and an escaped quote inside a string
    b"  42 ,\n"  # 2: not an object
    b' {"id": 3,\n  "nested": {"list": [1, {"x": "]"}]}\n },'  # 3: pretty-printed over lines
    b'"text", {"id": 5} ,\n'  # 4: a string; 5: an object
    b"{bad json}, "  # 6: malformed
    b'{"id": 7}\n] \n'
)


@pytest.fixture
def read_array(write_bytes):
    """Write `data` as a .json file; return a reader `(position, rows) -> RawBatch` over it."""

    def make(data: bytes, max_record_bytes: int = 1024, name: str = "input.json"):
        path = write_bytes(name, data)

        def read(start: Position, max_rows: int):
            return read_json_array_batch(BatchRequest(path, start, max_rows, max_record_bytes))

        read.path = path
        return read

    return make


@pytest.mark.parametrize("batch_size", [1, 2, 3, 100])
def test_elements_are_records_numbered_by_index_whatever_the_batch_size(read_array, batch_size):
    batches = read_all(read_array(MIXED), batch_size)

    assert column_values(batches, "id") == [1, 3, 5, 7]
    assert good_lines(batches) == [1, 3, 5, 7]
    assert bad_lines(batches) == [2, 4, 6]
    assert sum(batch.records_read for batch in batches) == 7
    assert batches[-1].end.offset == len(MIXED)
    assert all(batch.format is RecordFormat.JSON_ARRAY for batch in batches)


@pytest.mark.parametrize("window", [3, 7, 64])
def test_a_scan_window_cutting_strings_and_escapes_changes_nothing(read_array, monkeypatch, window):
    monkeypatch.setattr(json_array_module, "_WINDOW", window)

    batches = read_all(read_array(MIXED), 2)

    assert column_values(batches, "id") == [1, 3, 5, 7]
    assert column_values(batches, "s") == ['a,]}"b']


def test_quarantined_elements_name_their_index_reason_and_exact_bytes(read_array):
    read = read_array(MIXED)
    batch = read(Position(), 100)

    found = {entry.line: entry for entry in batch.quarantined}
    assert "number" in found[2].reason and "string" in found[4].reason
    assert found[6].reason.startswith("malformed JSON")
    assert original(found[2], 1024) == b"42"
    assert original(found[6], 1024) == b"{bad json}"
    assert all(entry.format is RecordFormat.JSON_ARRAY for entry in found.values())


def test_one_line_array_of_many_records_is_read_in_batches_from_byte_offsets(read_array):
    data = json.dumps([{"n": n} for n in range(1000)]).encode()
    batches = read_all(read_array(data), 300)

    assert column_values(batches, "n") == list(range(1000))
    assert [batch.end.line for batch in batches] == [300, 600, 900, 1000]
    assert batches[1].start.offset == data.index(b'{"n": 300}') - 1, "resumes at the byte after a comma"


def test_an_element_over_the_limit_is_skipped_by_the_scan_and_reported_with_its_span(read_array):
    big = b'{"blob": "' + b"x" * 5000 + b'"}'
    data = b'[{"n": 1}, ' + big + b', {"n": 2}]'

    batch = read_array(data, max_record_bytes=1024)(Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]
    [entry] = batch.quarantined
    assert (entry.line, entry.offset, entry.size) == (2, data.index(big), len(big))
    assert "exceeds the limit" in entry.reason


def test_an_element_nested_too_deep_is_quarantined_unparsed(read_array):
    deep = b'{"a": ' * 40 + b"1" + b"}" * 40
    batch = read_array(b'[{"n": 1}, ' + deep + b"]", max_record_bytes=4096)(Position(), 10)

    assert batch.frame["n"].to_list() == [1]
    [entry] = batch.quarantined
    assert entry.line == 2 and "nested 40 levels deep" in entry.reason


def test_a_line_break_inside_a_string_is_not_json(read_array):
    batch = read_array(b'[{"s": "one\ntwo"}, {"s": "ok"}]')(Position(), 10)

    assert batch.frame["s"].to_list() == ["ok"]
    assert [entry.line for entry in batch.quarantined] == [1]
    assert "line break inside a string" in batch.quarantined[0].reason


def test_content_after_the_closing_bracket_is_quarantined_to_the_end(read_array):
    data = b'[{"n": 1}] trailing {"n": 2}\n'
    batch = read_array(data)(Position(), 10)

    assert batch.frame["n"].to_list() == [1]
    [entry] = batch.quarantined
    assert entry.offset == data.index(b"trailing") and entry.size == len(data) - entry.offset
    assert original(entry, 1024) == b'trailing {"n": 2}'
    assert batch.records_read == 2 and batch.exhausted


@pytest.mark.parametrize(
    "data", [b"[]", b" [ ] ", b'[{"n": 1},]', b'[{"n": 1}'], ids=["empty", "blank", "comma", "open"]
)
def test_empty_trailing_comma_and_unclosed_arrays_end_cleanly(read_array, data):
    batches = read_all(read_array(data), 10)

    assert column_values(batches, "n") == ([] if b"n" not in data else [1])
    assert batches[-1].end.offset == len(data)


def test_a_file_that_does_not_open_an_array_is_refused(read_array):
    with pytest.raises(InputError, match="not a JSON array"):
        read_array(b'{"n": 1}')(Position(), 10)


def test_only_a_dot_json_file_starting_with_a_bracket_is_an_array(write_bytes):
    array_file = write_bytes("a.json", b"\xef\xbb\xbf\n\n  [1]")
    lines_file = write_bytes("b.json", b'{"n": 1}\n{"n": 2}\n')
    named_jsonl = write_bytes("c.jsonl", b"[1, 2]\n")

    assert starts_with_array(array_file) and not starts_with_array(lines_file)
    formats = [
        record_format(InputFile(path, InputFormat.JSONL, 1, 0)) for path in (array_file, lines_file, named_jsonl)
    ]
    assert formats == [RecordFormat.JSON_ARRAY, RecordFormat.JSONL, RecordFormat.JSONL]


def test_the_first_batch_estimate_counts_elements_not_lines(write_bytes):
    data = json.dumps([{"n": n, "pad": "x" * 90} for n in range(5000)]).encode()  # one line
    path = write_bytes("one-line.json", data)

    estimate = estimate_bytes_per_row(InputFile(path, InputFormat.JSONL, len(data), 0))

    assert 90 < estimate < 120
