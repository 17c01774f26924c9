"""The web_events pipeline's transform, run on a file as a run would stage it."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bqhold.flows.web_events import PIPELINE
from bqhold.tasks.core.pipeline import preview
from tests.conftest import SAMPLE

PURCHASE = {
    "event_id": "e1",
    "type": "purchase",
    "ts": "2026-11-01T10:30:00Z",
    "user": {"id": 42, "country": "DE", "plan": "pro"},
    "device": {"os": "ios"},
    "context": {"page": {"path": "/checkout"}, "utm": {"source": "newsletter"}},
    "properties": {"amount": 19.99, "currency": "EUR"},
}
CLICK_IN_USD = {
    "event_id": "e2",
    "type": "click",
    "ts": "2026-11-01T10:31:00Z",
    "device": {"os": "windows"},
    "properties": {"amount": 5.0, "currency": "USD"},
}
NO_TIME = {"event_id": "e3", "type": "click", "ts": "yesterday"}


def jsonl(*records: dict) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def test_an_event_becomes_one_typed_row_with_derived_fields(write_bytes):
    rows = preview(PIPELINE, write_bytes("events.jsonl", jsonl(PURCHASE, CLICK_IN_USD))).rows

    assert rows.to_dicts() == [
        {
            "event_id": "e1",
            "event_type": "purchase",
            "event_ts": datetime(2026, 11, 1, 10, 30, tzinfo=UTC),
            "user_id": 42,
            "country": "DE",
            "plan": "pro",
            "os": "ios",
            "page_path": "/checkout",
            "utm_source": "newsletter",
            "is_mobile": True,
            "revenue_eur": 19.99,
        },
        {
            "event_id": "e2",
            "event_type": "click",
            "event_ts": datetime(2026, 11, 1, 10, 31, tzinfo=UTC),
            "user_id": None,
            "country": None,
            "plan": None,
            "os": "windows",
            "page_path": None,
            "utm_source": None,
            "is_mobile": False,
            "revenue_eur": None,
        },
    ]


def test_an_event_without_a_timestamp_is_quarantined_at_its_line_with_the_reason(write_bytes):
    result = preview(PIPELINE, write_bytes("events.jsonl", jsonl(PURCHASE, NO_TIME, CLICK_IN_USD)))

    assert result.rows["event_id"].to_list() == ["e1", "e2"]
    [entry] = result.quarantined
    assert (entry.line, entry.reason) == (2, "ts is not a timestamp: yesterday")


def test_an_event_seen_twice_is_staged_once_by_its_event_id(write_bytes):
    result = preview(PIPELINE, write_bytes("events.jsonl", jsonl(PURCHASE, CLICK_IN_USD, PURCHASE)))

    assert result.rows["event_id"].to_list() == ["e1", "e2"]


def test_the_bundled_sample_is_staged_whole():
    rows = preview(PIPELINE, SAMPLE, rows=100).rows

    assert rows.height == 100 and rows["event_ts"].null_count() == 0
    assert set(rows["is_mobile"].unique()) == {True, False}
