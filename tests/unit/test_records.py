"""Value objects: quarantine lines are valid JSON with a bounded, printable preview."""

from __future__ import annotations

import json

from tasks.core.records import Position, QuarantineEntry, preview


def test_quarantine_entry_is_one_json_line_with_its_position_and_reason():
    entry = QuarantineEntry("/data/in.jsonl", 7, 120, "malformed JSON", "{bad")

    line = entry.to_json()

    assert "\n" not in line
    assert json.loads(line) == {
        "source": "/data/in.jsonl",
        "line": 7,
        "offset": 120,
        "reason": "malformed JSON",
        "record": "{bad",
        "record_truncated": False,
    }


def test_long_records_are_truncated_and_say_so():
    body = json.loads(QuarantineEntry("f", 1, 0, "too long", "x" * 10_000).to_json())

    assert len(body["record"]) == 2048
    assert body["record_truncated"] is True


def test_non_ascii_text_is_kept_readable():
    assert "café" in QuarantineEntry("f", 1, 0, "r", "café").to_json()


def test_preview_escapes_invalid_utf8_and_drops_the_line_end():
    assert preview(b'{"a": "\xff"}\r\n') == '{"a": "\\xff"}'


def test_preview_is_bounded():
    assert len(preview(b"y" * 1_000_000)) <= 2049


def test_position_starts_at_the_beginning_of_the_first_file():
    assert Position() == Position(0, 0, 0)
