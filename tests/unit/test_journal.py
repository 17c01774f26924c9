"""HOLD₂'s journal entries to bytes and back (tasks/core/journal.py): what a fresh machine reads."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from bqhold.tasks.core.journal import JournalEntry, decode, encode, entry_name, seq_of


def test_an_entry_without_keys_is_readable_json_named_by_its_number():
    entry = JournalEntry(42, "set_phase", {"run_id": "r1", "phase": "loading", "at": "2026-11-30T10:00:00+00:00"})

    assert entry.name == "journal/000000000042.json"
    assert encode(entry).decode().startswith('{"args": {"at": "2026-11-30T10:00:00+00:00"')
    assert decode("000000000042.json", encode(entry)) == entry


def test_a_committed_batch_carries_its_keys_and_arguments_in_one_parquet_object():
    keys = pl.DataFrame({"key": ["a", "ß", ""], "key_hash": pl.Series([1, 2**64 - 1, 0], dtype=pl.UInt64)})
    entry = JournalEntry(7, "commit_batch", {"table": "events", "ledger": [1, None, "x"]}, keys)

    back = decode("000000000007.parquet", encode(entry))

    assert entry.name == "journal/000000000007.parquet"
    assert (back.seq, back.op, back.args) == (7, "commit_batch", {"table": "events", "ledger": [1, None, "x"]})
    assert back.keys.to_dicts() == keys.select("key_hash", "key").to_dicts()


def test_times_are_kept_as_iso_text_and_other_objects_are_refused():
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    assert decode("000000000001.json", encode(JournalEntry(1, "x", {"at": at}))).args == {"at": at.isoformat()}
    with pytest.raises(TypeError, match="set is not kept"):
        encode(JournalEntry(1, "x", {"bad": {1}}))


@pytest.mark.parametrize(
    ("name", "seq"),
    [("000000000042.json", 42), ("000000000042.parquet", 42), ("42.json", None), ("000000000042.json.tmp", None)],
)
def test_only_numbered_entries_count(name, seq):
    assert seq_of(name) == seq
    if seq is None:
        with pytest.raises(ValueError, match="not a journal entry"):
            decode(name, b"{}")
    else:
        assert entry_name(seq, name.endswith("parquet")) == f"journal/{name}"
