"""Compressed and Cloud Storage inputs (tasks/core/inputs.py, tasks/core/spool.py): how they are
named, copied to a plain file in bounded chunks, and told apart from another version."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import pyarrow as pa
import pytest

from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.increments import Change, DeliveredFile, decide, resume_problem
from bqhold.tasks.core.inputs import InputFormat, detect_format, resolve_inputs, spooled
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import JobIdentity, RunRecord
from bqhold.tasks.core.spool import drop, ensure_local

LINES = b"".join(b'{"id": %d, "text": "%s"}\n' % (i, b"x" * (i % 50)) for i in range(20_000))


@pytest.mark.parametrize(
    ("name", "fmt"),
    [("a.jsonl.gz", InputFormat.JSONL), ("a.CSV.GZ", InputFormat.CSV), ("a.ndjson.zst", InputFormat.JSONL)],
)
def test_a_compressed_file_has_the_format_of_the_suffix_before_its_codec(name, fmt):
    assert detect_format(PurePosixPath(name)) is fmt


@pytest.mark.parametrize("name", ["a.parquet.gz", "a.gz", "a.txt.zst"])
def test_what_cannot_be_read_compressed_is_refused_naming_the_forms_that_can(name):
    with pytest.raises(InputError, match=r"expected one of .* \(or compressed: \.jsonl\.gz"):
        detect_format(PurePosixPath(name))


@pytest.mark.parametrize("codec", ["gzip", "zstd"])
def test_a_compressed_input_is_read_from_a_plain_copy_as_any_file(tmp_path: Path, codec: str):
    plain = tmp_path / "events.jsonl"
    plain.write_bytes(LINES)
    packed = tmp_path / f"events.jsonl.{'gz' if codec == 'gzip' else 'zst'}"
    with pa.CompressedOutputStream(str(packed), codec) as out:
        out.write(LINES)
    [item] = resolve_inputs(str(packed), tmp_path / "spool")
    [reference] = resolve_inputs(str(plain))

    assert item.origin == str(packed) and item.compression == codec and item.size == packed.stat().st_size
    middle = Position(0, 200_000, 0, 0)
    batch = read_batch(item, middle, 1_000)
    assert batch.frame.equals(read_batch(reference, middle, 1_000).frame)  # offsets count decompressed bytes
    assert Path(item.path).read_bytes() == LINES
    drop((item,))
    assert not Path(item.path).exists()


def test_a_copy_is_named_by_its_origins_version_and_no_half_copy_is_left(tmp_path: Path):
    packed = tmp_path / "events.jsonl.gz"
    packed.write_bytes(gzip.compress(LINES)[:-200])  # cut short
    first = spooled(str(packed), InputFormat.JSONL, 10, 1, tmp_path / "spool")

    assert first.path != spooled(str(packed), InputFormat.JSONL, 10, 2, tmp_path / "spool").path
    with pytest.raises(InputError, match="events.jsonl.gz: cannot be read as gzip"):
        ensure_local(first)
    assert list((tmp_path / "spool").glob("*")) == []


RUN_JOB = JobIdentity("generic", "gs://b/*.jsonl", "events", None, "duckdb:///w.duckdb")


def test_another_version_of_an_object_is_a_changed_input_never_a_new_one(tmp_path: Path):
    v1 = spooled("gs://b/a.jsonl", InputFormat.JSONL, 100, 1111, tmp_path)
    v2 = spooled("gs://b/a.jsonl", InputFormat.JSONL, 100, 2222, tmp_path)
    seen = DeliveredFile("gs://b/a.jsonl", "r1", InputFormat.JSONL, 100, 3, 0, 100, 1111)

    assert decide(v1, seen).change is Change.UNCHANGED
    changed = decide(v2, seen)
    assert changed.change is Change.CHANGED and "replaced since run r1 delivered it" in changed.detail


def test_resuming_in_the_middle_of_a_replaced_object_is_refused_by_name(tmp_path: Path):
    v1 = spooled("gs://b/a.jsonl", InputFormat.JSONL, 100, 1111, tmp_path)
    run = RunRecord("r1", RUN_JOB, (v1,), "fp", Phase.STAGING, datetime.now(UTC))
    at = Position(0, 50, 2, 0)

    assert resume_problem(run, at, {"gs://b/a.jsonl": v1}) is None
    replaced = spooled("gs://b/a.jsonl", InputFormat.JSONL, 120, 2222, tmp_path)
    assert resume_problem(run, at, {"gs://b/a.jsonl": replaced}).startswith("gs://b/a.jsonl was replaced since it")
    assert resume_problem(run, at, {}) == "gs://b/a.jsonl is gone"
