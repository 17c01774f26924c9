"""Quarantine files: entries keep the original bytes (text, base64 or a side file)."""

from __future__ import annotations

import base64
import json

from tasks.core.quarantine import (
    entry_line,
    side_file_name,
)
from tasks.core.records import QuarantineEntry, RecordFormat

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
