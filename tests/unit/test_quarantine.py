"""Quarantine files: entries keep the original bytes (text, base64 or a side file) and read back
into an input of the records' own format for a replay."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import pytest

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.quarantine import (
    QuarantinedRecord,
    entry_line,
    read_quarantine,
    replay_plan,
    side_file_name,
    write_replay_input,
)
from bqhold.tasks.core.records import QuarantineEntry, RecordFormat

ENTRY = QuarantineEntry("/data/in.jsonl", 7, 120, "malformed JSON", size=5)


def test_an_entry_is_one_json_line_with_run_batch_position_reason_and_the_record_as_text():
    line = entry_line(ENTRY, "r1", 3, b'{"caf\xc3\xa9": ')

    assert "\n" not in line and "café" in line
    assert json.loads(line) == {
        "run_id": "r1",
        "batch": 3,
        "source": "/data/in.jsonl",
        "format": "jsonl",
        "line": 7,
        "offset": 120,
        "reason": "malformed JSON",
        "record": '{"café": ',
    }


def test_bytes_that_are_not_utf8_are_kept_as_base64():
    body = json.loads(entry_line(ENTRY, "r1", 3, b'{"a": "\xff"}'))

    assert "record" not in body and base64.b64decode(body["record_base64"]) == b'{"a": "\xff"}'


def test_a_large_record_names_its_side_file_and_size_and_a_csv_record_its_header():
    entry = QuarantineEntry("/data/in.csv", 42, 9, "expected 2 fields", RecordFormat.CSV, 10)
    body = json.loads(entry_line(entry, "r1", 7, side_file="batch-000007-line-42.bin", side_bytes=10, header=b"id,v"))

    assert (body["record_file"], body["record_bytes"], body["header"]) == ("batch-000007-line-42.bin", 10, "id,v")
    assert "record" not in body
    assert side_file_name(7, entry, 0) == "batch-000007-line-42.bin"
    assert side_file_name(7, QuarantineEntry("f", None, None, "r"), 3) == "batch-000007-record-3.bin"


def write_entries(path: Path, *lines: str) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_entries_read_back_with_their_bytes_wherever_they_are(tmp_path: Path):
    (tmp_path / "batch-000001-line-2.bin").write_bytes(b'{"big": 1}')
    path = write_entries(
        tmp_path / "batch-000001.jsonl",
        entry_line(ENTRY, "r1", 1, b'{"a": 1}'),
        entry_line(ENTRY, "r1", 1, b'{"a": "\xff"}'),
        entry_line(ENTRY, "r1", 1, side_file="batch-000001-line-2.bin", side_bytes=10),
    )

    records = read_quarantine(path)

    out = io.BytesIO()
    write_replay_input(out, replay_plan(path, records), records)
    assert out.getvalue() == b'{"a": 1}\n{"a": "\xff"}\n{"big": 1}\n'


def test_csv_records_replay_under_their_header_and_array_elements_as_an_array(tmp_path: Path):
    csv = QuarantineEntry("/in.csv", 3, 0, "r", RecordFormat.CSV)
    element = QuarantineEntry("/in.json", 2, 0, "r", RecordFormat.JSON_ARRAY)
    csv_file = write_entries(
        tmp_path / "a.jsonl", *(entry_line(csv, "r1", 0, raw, header=b"id,v") for raw in (b"1,x", b'2,"y\nz"'))
    )
    json_file = write_entries(tmp_path / "b.jsonl", entry_line(element, "r1", 0, b'{\n "n": 1\n}'))

    outputs = []
    for path in (csv_file, json_file):
        records = read_quarantine(path)
        out = io.BytesIO()
        write_replay_input(out, replay_plan(path, records), records)
        outputs.append(out.getvalue())

    assert outputs[0] == b'id,v\n1,x\n2,"y\nz"\n'
    assert json.loads(outputs[1]) == [{"n": 1}]


def test_records_of_several_runs_or_formats_are_refused_together(tmp_path: Path):
    path = write_entries(tmp_path / "q.jsonl", entry_line(ENTRY, "r1", 0, b"{}"), entry_line(ENTRY, "r2", 0, b"{}"))

    with pytest.raises(InputError, match="several runs"):
        replay_plan(path, read_quarantine(path))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("not json\n", "line 1: not valid JSON"),
        ("[1]\n", "line 1: not a bqhold quarantine entry"),
        ('{"record": "x"}\n', "line 1: not a bqhold quarantine entry"),
        ('{"run_id": "r", "record_base64": "%%%"}\n', "line 1: not a bqhold quarantine entry"),
        ('{"run_id": "r", "record_file": "gone.bin"}\n', "record_file"),
        ("\n\n", "holds no quarantined record"),
    ],
)
def test_a_file_that_is_not_a_quarantine_is_refused_naming_the_line(tmp_path: Path, text, expected):
    path = tmp_path / "q.jsonl"
    path.write_text(text)

    with pytest.raises(InputError, match=expected):
        read_quarantine(path)


def test_a_side_file_is_streamed_not_read_whole(tmp_path: Path):
    side = tmp_path / "big.bin"
    side.write_bytes(b"x" * (3 << 20))
    out = io.BytesIO()

    QuarantinedRecord("r1", RecordFormat.JSONL, None, None, side).copy_to(out)

    assert out.getvalue() == side.read_bytes()
