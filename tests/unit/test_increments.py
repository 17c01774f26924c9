"""What a new run of a job reads: new files, grown tails; delivered files that changed are refused."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import google_crc32c
import pytest

from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.errors import ResumeRefused
from bqhold.tasks.core.increments import (
    Change,
    DeliveredFile,
    changed_files_error,
    decide,
    delivered_files,
    resume_problem,
)
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.ledger import SourceSpan
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import JobIdentity, RunRecord

JOB = JobIdentity("generic", "/in/*.jsonl", "events", None, "duckdb:///w.duckdb")
LINES = b"".join(b'{"id": %d}\n' % i for i in range(100))


def seen_now(path: Path, fmt: InputFormat = InputFormat.JSONL) -> InputFile:
    stat = path.stat()
    return InputFile(str(path), fmt, stat.st_size, stat.st_mtime_ns)


def delivered(path: Path, data: bytes, run_id: str = "r1") -> DeliveredFile:
    """What a run that read `data` (then the whole of `path`) to its end recorded."""
    stat = path.stat()
    return DeliveredFile(
        str(path),
        run_id,
        InputFormat.JSONL,
        len(data),
        data.count(b"\n"),
        google_crc32c.value(data),
        len(data),
        stat.st_mtime_ns,
    )


def bump_mtime(path: Path) -> None:
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def test_a_file_never_delivered_is_read_whole(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)

    decision = decide(seen_now(path), None)

    assert decision.change is Change.NEW and decision.file.start_offset == 0


def test_an_untouched_delivered_file_is_skipped_without_reading_it(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES)
    record = DeliveredFile(**{**record.__dict__, "crc": 12345})  # a wrong sum: proves it is not read

    assert decide(seen_now(path), record).change is Change.UNCHANGED


def test_a_touched_file_with_the_same_bytes_is_skipped(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES)
    bump_mtime(path)

    assert decide(seen_now(path), record).change is Change.UNCHANGED


def test_a_grown_file_is_read_from_where_its_delivered_part_ends(tmp_path: Path):
    path = tmp_path / "app.log.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES)
    with open(path, "ab") as handle:
        handle.write(b'{"id": 100}\n')

    decision = decide(seen_now(path), record)

    assert decision.change is Change.GROWN
    tail = decision.file
    assert (tail.start_offset, tail.start_line, tail.start_crc) == (len(LINES), 100, google_crc32c.value(LINES))


def test_a_same_size_edit_in_the_middle_is_a_change(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES)
    edited = LINES.replace(b'{"id": 50}', b'{"id": 51}')
    assert len(edited) == len(LINES)
    path.write_bytes(edited)
    bump_mtime(path)

    decision = decide(seen_now(path), record)

    assert decision.change is Change.CHANGED
    assert f"first {len(LINES):,} bytes differ from what run r1 delivered" in decision.detail


def test_a_truncated_file_is_a_change(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES)
    path.write_bytes(LINES[:100])

    decision = decide(seen_now(path), record)

    assert decision.change is Change.CHANGED and "shrank" in decision.detail


def test_a_file_delivered_without_a_checksum_that_changed_is_a_change(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = DeliveredFile(**{**delivered(path, LINES).__dict__, "crc": None})
    with open(path, "ab") as handle:
        handle.write(b'{"id": 100}\n')

    assert decide(seen_now(path), record).change is Change.CHANGED


def test_a_parquet_file_is_unchanged_only_with_the_same_bytes(tmp_path: Path):
    path = tmp_path / "part.parquet"
    path.write_bytes(b"PAR1" + LINES + b"PAR1")
    data = path.read_bytes()
    record = DeliveredFile(
        str(path), "r1", InputFormat.PARQUET, 100, 100, google_crc32c.value(data), len(data), path.stat().st_mtime_ns
    )
    bump_mtime(path)
    assert decide(seen_now(path, InputFormat.PARQUET), record).change is Change.UNCHANGED
    path.write_bytes(data.replace(b"50", b"51"))
    assert decide(seen_now(path, InputFormat.PARQUET), record).change is Change.CHANGED


def test_the_refusal_names_the_file_the_run_and_the_way_out(tmp_path: Path):
    path = tmp_path / "day1.jsonl"
    path.write_bytes(LINES)
    record = delivered(path, LINES, run_id="nightly-7")
    path.write_bytes(LINES[:10])

    error = changed_files_error([decide(seen_now(path), record)], tmp_path / "hold")

    message = str(error)
    assert isinstance(error, ResumeRefused) and error.exit_code == 2
    assert str(path) in message and "nightly-7" in message
    assert f"python flows/run.py abandon --run-id nightly-7 --hold-dir {tmp_path / 'hold'}" in message


def run_record(run_id: str, *inputs: InputFile) -> RunRecord:
    return RunRecord(run_id, JOB, inputs, "fp", Phase.DELIVERED, datetime(2026, 11, 29, tzinfo=UTC))


def test_delivered_files_keep_the_furthest_read_of_each_path():
    a, b = InputFile("/in/a.jsonl", InputFormat.JSONL, 300, 1), InputFile("/in/b.jsonl", InputFormat.JSONL, 50, 1)
    first, second = run_record("r1", a, b), run_record("r2", a)
    spans = [
        ("r1", SourceSpan(Position(0, 200, 20, 111), True, 200, 5)),
        ("r1", SourceSpan(Position(1, 50, 5, 222), True, 50, 6)),
        ("r2", SourceSpan(Position(0, 300, 30, 333), True, 300, 7)),
    ]

    found = delivered_files([first, second], spans)

    assert (found["/in/a.jsonl"].run_id, found["/in/a.jsonl"].end, found["/in/a.jsonl"].crc) == ("r2", 300, 333)
    assert (found["/in/b.jsonl"].run_id, found["/in/b.jsonl"].mtime_ns) == ("r1", 6)


def test_runs_recorded_before_spans_existed_count_as_having_read_their_files_as_planned():
    old = run_record("old", InputFile("/in/a.jsonl", InputFormat.JSONL, 300, 9))

    found = delivered_files([old], [])

    assert found["/in/a.jsonl"] == DeliveredFile("/in/a.jsonl", "old", InputFormat.JSONL, 300, 0, None, 300, 9)


def staging_run(path: Path) -> RunRecord:
    stat = path.stat()
    item = InputFile(str(path), InputFormat.JSONL, stat.st_size, stat.st_mtime_ns)
    return RunRecord("r1", JOB, (item,), "fp", Phase.STAGING, datetime(2026, 11, 29, tzinfo=UTC))


@pytest.fixture
def half_staged(tmp_path: Path) -> tuple[Path, RunRecord, Position]:
    path = tmp_path / "big.jsonl"
    path.write_bytes(LINES)
    half = len(LINES) // 2
    return path, staging_run(path), Position(0, half, 50, google_crc32c.value(LINES[:half]))


def test_resuming_an_unchanged_file_is_safe(half_staged):
    _, run, at = half_staged
    assert resume_problem(run, at, {}) is None


def test_resuming_after_an_append_is_safe(half_staged):
    path, run, at = half_staged
    with open(path, "ab") as handle:
        handle.write(b'{"id": 100}\n')
    assert resume_problem(run, at, {}) is None


def test_resuming_after_an_edit_of_the_part_already_staged_is_refused(half_staged):
    path, run, at = half_staged
    path.write_bytes(LINES.replace(b'{"id": 3}', b'{"id": 4}'))
    assert "already staged, differ now" in resume_problem(run, at, {})


def test_resuming_after_an_edit_of_the_part_not_yet_read_is_safe(half_staged):
    path, run, at = half_staged
    path.write_bytes(LINES.replace(b'{"id": 90}', b'{"id": 91}'))
    assert resume_problem(run, at, {}) is None


def test_resuming_a_file_that_is_gone_is_refused(half_staged):
    path, run, at = half_staged
    path.unlink()
    assert resume_problem(run, at, {}) == f"{path} is gone"
