"""Atomic writes: a reader sees the old file or the whole new one; failures leave no temp files."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.atomic import TEMP_SUFFIX, atomic_write, atomic_write_bytes, sweep_temp_files


def test_write_creates_the_file_and_its_directories(tmp_path):
    path = tmp_path / "a" / "b" / "file.json"

    size = atomic_write_bytes(path, b"hello")

    assert path.read_bytes() == b"hello"
    assert size == 5


def test_write_replaces_an_existing_file_and_leaves_nothing_else(tmp_path):
    path = tmp_path / "file.json"
    atomic_write_bytes(path, b"old")

    atomic_write_bytes(path, b"new content")

    assert path.read_bytes() == b"new content"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_failure_while_writing_keeps_the_old_file_and_removes_the_temp(tmp_path):
    path = tmp_path / "file.json"
    atomic_write_bytes(path, b"old")

    def half_then_fail(handle):
        handle.write(b"partial")
        raise OSError("disk trouble")

    with pytest.raises(OSError, match="disk trouble"):
        atomic_write(path, half_then_fail)

    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["file.json"]


def test_failure_just_before_the_rename_keeps_the_old_file(tmp_path):
    path = tmp_path / "file.json"
    atomic_write_bytes(path, b"old")
    seen_before_rename = []

    def crash():
        seen_before_rename.append(path.read_bytes())
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, lambda handle: handle.write(b"new"), before_rename=crash)

    assert seen_before_rename == [b"old"]
    assert path.read_bytes() == b"old"
    assert list(tmp_path.glob(f"*{TEMP_SUFFIX}")) == []


def test_failed_first_write_leaves_no_file_at_all(tmp_path):
    path = tmp_path / "file.json"

    with pytest.raises(ValueError):
        atomic_write(path, lambda handle: (_ for _ in ()).throw(ValueError("boom")))

    assert list(tmp_path.iterdir()) == []


def test_the_new_content_is_complete_before_the_rename(tmp_path):
    path = tmp_path / "file.json"
    temp_contents = []

    def inspect():
        temp_contents.extend(p.read_bytes() for p in tmp_path.glob(f".*{TEMP_SUFFIX}"))

    atomic_write(path, lambda handle: handle.write(b"complete"), before_rename=inspect)

    assert temp_contents == [b"complete"]


def test_sweep_removes_temp_files_a_crash_left_and_nothing_else(tmp_path):
    (tmp_path / f".segment.jsonl.1234{TEMP_SUFFIX}").write_bytes(b"torn")
    (tmp_path / f".checkpoint.json.99{TEMP_SUFFIX}").write_bytes(b"torn")
    (tmp_path / "batch-000001.jsonl").write_bytes(b"{}\n")
    (tmp_path / "notes.tmp").write_bytes(b"not ours: not hidden")

    removed = sweep_temp_files(tmp_path)

    assert removed == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batch-000001.jsonl", "notes.tmp"]


def test_sweep_of_a_missing_directory_removes_nothing(tmp_path):
    assert sweep_temp_files(tmp_path / "absent") == 0


def test_sweep_leaves_the_temp_of_a_failed_write_nothing_to_do(tmp_path):
    path = tmp_path / "file.json"
    with pytest.raises(RuntimeError):
        atomic_write(path, lambda handle: (_ for _ in ()).throw(RuntimeError("x")))

    assert sweep_temp_files(tmp_path) == 0
