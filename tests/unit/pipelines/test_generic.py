"""The generic pipeline's transform, run on a file as a run would stage it."""

from __future__ import annotations

import json

from bqhold.flows.generic import PIPELINE
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import preview

RECORDS = [
    {"id": 1, "user": {"id": 7, "address": {"city": "Oslo"}}, "tags": ["a", "b"]},
    {"id": 2, "user": {"id": 8}, "tags": [], "_batch": "theirs"},
]


def jsonl(records: list[dict]) -> bytes:
    return b"".join(json.dumps(record).encode() + b"\n" for record in records)


def test_nested_objects_become_records_and_lists_arrays(write_bytes):
    rows = preview(PIPELINE, write_bytes("users.jsonl", jsonl(RECORDS))).rows

    assert rows.select("id", "user", "tags").to_dicts() == [
        {"id": 1, "user": {"id": 7, "address": {"city": "Oslo"}}, "tags": ["a", "b"]},
        {"id": 2, "user": {"id": 8, "address": None}, "tags": []},
    ]


def test_with_nesting_flatten_nested_objects_become_columns(write_bytes):
    options = JobOptions(input="users.jsonl", nesting="flatten")
    rows = preview(PIPELINE, write_bytes("users.jsonl", jsonl(RECORDS)), options=options).rows

    assert rows.select("id", "user__id", "user__address__city").to_dicts() == [
        {"id": 1, "user__id": 7, "user__address__city": "Oslo"},
        {"id": 2, "user__id": 8, "user__address__city": None},
    ]


def test_a_field_named_like_bqholds_own_columns_is_kept_under_another_name(write_bytes):
    rows = preview(PIPELINE, write_bytes("users.jsonl", jsonl(RECORDS))).rows

    assert rows["f__batch"].to_list() == [None, "theirs"]
    assert "_batch" not in rows.columns


def test_csv_records_are_staged_with_their_values_typed(write_bytes):
    rows = preview(PIPELINE, write_bytes("orders.csv", b"order_id,amount,note\n1,9.5,first\n2,3,\n")).rows

    assert rows.to_dicts() == [
        {"order_id": 1, "amount": 9.5, "note": "first"},
        {"order_id": 2, "amount": 3.0, "note": None},
    ]


def test_every_record_is_kept_without_a_key(write_bytes):
    result = preview(PIPELINE, write_bytes("users.jsonl", jsonl(RECORDS + RECORDS)))

    assert result.rows.height == 4 and not result.quarantined
    assert preview(PIPELINE, write_bytes("again.jsonl", jsonl(RECORDS + RECORDS)), key="id").rows.height == 2
