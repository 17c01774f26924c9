"""readers.read_batch dispatches on the format; validate_readable fails fast on unusable input."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bqhold.tasks.core import readers
from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.readers import estimate_bytes_per_row, read_batch, validate_readable
from bqhold.tasks.core.records import Position


def input_file(path: str, fmt: InputFormat) -> InputFile:
    return InputFile(path, fmt, Path(path).stat().st_size if Path(path).exists() else 0, 0)


def test_read_batch_reads_jsonl(write_bytes):
    item = input_file(write_bytes("a.jsonl", b'{"n": 1}\n{"n": 2}\n'), InputFormat.JSONL)

    batch = read_batch(item, Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]


def test_read_batch_reads_csv(write_bytes):
    item = input_file(write_bytes("a.csv", b"n\n1\n2\n"), InputFormat.CSV)

    batch = read_batch(item, Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]


def test_read_batch_reads_parquet(tmp_path):
    path = tmp_path / "a.parquet"
    pl.DataFrame({"n": [1, 2]}).write_parquet(path)

    batch = read_batch(input_file(str(path), InputFormat.PARQUET), Position(), 10)

    assert batch.frame["n"].to_list() == [1, 2]


def test_read_batch_passes_the_record_size_limit(write_bytes):
    item = input_file(write_bytes("a.jsonl", b'{"s": "' + b"x" * 4096 + b'"}\n{"n": 2}\n'), InputFormat.JSONL)

    batch = read_batch(item, Position(), 10, max_record_bytes=1024)

    assert batch.frame["n"].to_list() == [2]
    assert len(batch.quarantined) == 1


def test_read_batch_keeps_the_file_index_of_the_start(write_bytes):
    item = input_file(write_bytes("a.jsonl", b'{"n": 1}\n'), InputFormat.JSONL)

    batch = read_batch(item, Position(3, 0, 0), 10)

    assert batch.end.file_index == 3


def test_validate_readable_accepts_a_readable_text_file(write_bytes):
    validate_readable(input_file(write_bytes("a.jsonl", b'{"n": 1}\n'), InputFormat.JSONL))


def test_validate_readable_rejects_a_vanished_file_naming_it(tmp_path):
    item = InputFile(str(tmp_path / "gone.jsonl"), InputFormat.JSONL, 10, 0)

    with pytest.raises(InputError, match="gone.jsonl"):
        validate_readable(item)


def test_validate_readable_rejects_a_non_parquet_file(write_bytes):
    item = input_file(write_bytes("a.parquet", b"this is text"), InputFormat.PARQUET)

    with pytest.raises(InputError, match="a.parquet"):
        validate_readable(item)


def test_the_first_batch_estimate_counts_a_huge_first_record_whole_without_holding_it(write_bytes):
    huge = b'{"blob": "' + b"x" * (3 << 20) + b'"}\n'
    item = input_file(write_bytes("huge-first.jsonl", huge + b'{"n": 1}\n' * 10), InputFormat.JSONL)

    assert estimate_bytes_per_row(item) >= len(huge) / 11


def test_a_batch_of_large_records_stops_at_the_batch_byte_budget(write_bytes, monkeypatch):
    monkeypatch.setattr(readers, "MAX_BATCH_BYTES", 4096)
    item = input_file(write_bytes("large.jsonl", (b'{"blob": "' + b"x" * 1000 + b'"}\n') * 20), InputFormat.JSONL)

    batch = read_batch(item, Position(), 1000)

    assert batch.records_read == 5 and not batch.exhausted


def test_a_dot_json_array_file_is_read_as_its_elements(write_bytes):
    item = input_file(write_bytes("export.json", b'[{"n": 1}, {"n": 2}]'), InputFormat.JSONL)

    assert read_batch(item, Position(), 10).frame["n"].to_list() == [1, 2]
