"""Resolving --input: clear errors that name the path, sorted globs, a fingerprint that notices change."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bqhold.tasks.core.checkpoint import Checkpoint, encode
from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFormat, detect_format, fingerprint, resolve_inputs

SAMPLE = 64 * 1024


@pytest.fixture
def make_file(tmp_path: Path):
    """Create tmp_path/name with `data` (parents included); return the Path."""

    def make(name: str, data: bytes = b'{"a": 1}\n') -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    return make


def fingerprint_of(path: Path) -> str:
    return fingerprint(resolve_inputs(str(path)))


def test_single_file_resolves_to_its_absolute_path_format_and_size(make_file):
    path = make_file("data.jsonl", b'{"a": 1}\n')

    [item] = resolve_inputs(str(path))

    assert item.path == str(path.resolve())
    assert item.format is InputFormat.JSONL
    assert item.size == 9


def test_missing_file_is_an_input_error_naming_it(tmp_path):
    missing = tmp_path / "nope.jsonl"

    with pytest.raises(InputError, match="nope.jsonl.*not found"):
        resolve_inputs(str(missing))


def test_directory_is_an_input_error_suggesting_a_glob(tmp_path):
    with pytest.raises(InputError) as info:
        resolve_inputs(str(tmp_path))

    assert str(tmp_path) in str(info.value)
    assert "directory" in str(info.value) and "*.jsonl" in str(info.value)


def test_glob_matching_nothing_is_an_input_error_naming_the_pattern(tmp_path):
    pattern = str(tmp_path / "*.csv")

    with pytest.raises(InputError, match="no input file matches"):
        resolve_inputs(pattern)
    with pytest.raises(InputError) as info:
        resolve_inputs(pattern)
    assert pattern in str(info.value)


def test_a_named_pipe_is_not_a_regular_file_rather_than_empty(tmp_path):
    fifo = tmp_path / "events.jsonl"
    os.mkfifo(fifo)

    with pytest.raises(InputError, match="not a regular file") as info:
        resolve_inputs(str(fifo))
    assert str(fifo) in str(info.value) and "empty" not in str(info.value)


def test_empty_file_is_an_input_error_naming_it(make_file):
    path = make_file("empty.jsonl", b"")

    with pytest.raises(InputError, match="empty") as info:
        resolve_inputs(str(path))
    assert "empty.jsonl" in str(info.value)


@pytest.mark.parametrize("name", ["data.txt", "data.xlsx", "noext"])
def test_unknown_suffix_is_an_input_error_naming_the_file_and_known_formats(make_file, name):
    path = make_file(name)

    with pytest.raises(InputError) as info:
        resolve_inputs(str(path))

    message = str(info.value)
    assert name in message
    assert ".jsonl" in message and ".csv" in message and ".parquet" in message


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("a.jsonl", InputFormat.JSONL),
        ("a.NDJSON", InputFormat.JSONL),
        ("a.json", InputFormat.JSONL),
        ("a.csv", InputFormat.CSV),
        ("a.Parquet", InputFormat.PARQUET),
        ("a.pq", InputFormat.PARQUET),
    ],
)
def test_format_follows_the_suffix_in_any_case(name, fmt):
    assert detect_format(Path(name)) is fmt


def test_glob_results_are_sorted_by_path(make_file, tmp_path):
    for name in ("c.jsonl", "a.jsonl", "b.jsonl"):
        make_file(name)

    names = [Path(item.path).name for item in resolve_inputs(str(tmp_path / "*.jsonl"))]

    assert names == ["a.jsonl", "b.jsonl", "c.jsonl"]


def test_recursive_glob_finds_files_in_subdirectories(make_file, tmp_path):
    make_file("x/one.jsonl")
    make_file("x/y/two.jsonl")

    names = [Path(item.path).name for item in resolve_inputs(str(tmp_path / "**" / "*.jsonl"))]

    assert sorted(names) == ["one.jsonl", "two.jsonl"]


def test_empty_files_in_a_glob_are_skipped(make_file, tmp_path):
    make_file("a.jsonl")
    make_file("b.jsonl", b"")
    make_file("c.jsonl")

    names = [Path(item.path).name for item in resolve_inputs(str(tmp_path / "*.jsonl"))]

    assert names == ["a.jsonl", "c.jsonl"]


def test_glob_of_only_empty_files_is_an_input_error(make_file, tmp_path):
    make_file("a.jsonl", b"")

    with pytest.raises(InputError, match="empty"):
        resolve_inputs(str(tmp_path / "*.jsonl"))


def test_directories_matching_a_glob_are_ignored(make_file, tmp_path):
    make_file("a.jsonl")
    (tmp_path / "dir.jsonl").mkdir()

    names = [Path(item.path).name for item in resolve_inputs(str(tmp_path / "*.jsonl"))]

    assert names == ["a.jsonl"]


def test_glob_with_a_file_of_unknown_format_is_an_input_error_naming_it(make_file, tmp_path):
    make_file("a.jsonl")
    make_file("notes.txt", b"hello")

    with pytest.raises(InputError, match="notes.txt"):
        resolve_inputs(str(tmp_path / "*"))


# --- fingerprint ------------------------------------------------------------------------------


def big_payload() -> bytes:
    """Enough bytes that the start and end samples do not overlap."""
    return bytes(range(256)) * (3 * SAMPLE // 256)


def test_fingerprint_is_stable_for_the_same_bytes_even_after_a_rewrite(make_file):
    path = make_file("a.jsonl", big_payload())
    before = fingerprint_of(path)

    path.write_bytes(big_payload())
    os.utime(path, ns=(1, 1))

    assert fingerprint_of(path) == before


def test_fingerprint_changes_when_a_file_is_appended_to(make_file):
    path = make_file("a.jsonl", big_payload())
    before = fingerprint_of(path)

    with open(path, "ab") as handle:
        handle.write(b'{"more": 1}\n')

    assert fingerprint_of(path) != before


def test_fingerprint_changes_when_a_file_is_truncated(make_file):
    path = make_file("a.jsonl", big_payload())
    before = fingerprint_of(path)

    path.write_bytes(big_payload()[:-100])

    assert fingerprint_of(path) != before


@pytest.mark.parametrize("where", [0, 100, -100, -1])
def test_fingerprint_changes_when_bytes_near_either_end_are_edited(make_file, where):
    data = bytearray(big_payload())
    path = make_file("a.jsonl", bytes(data))
    before = fingerprint_of(path)

    data[where] ^= 0xFF
    path.write_bytes(bytes(data))

    assert fingerprint_of(path) != before


def test_fingerprint_of_a_small_file_notices_an_edit_in_the_middle(make_file):
    path = make_file("a.jsonl", b'{"a": 1}\n{"a": 2}\n{"a": 3}\n')
    before = fingerprint_of(path)

    path.write_bytes(b'{"a": 1}\n{"a": 9}\n{"a": 3}\n')

    assert fingerprint_of(path) != before


def test_fingerprint_changes_when_a_file_joins_a_glob(make_file, tmp_path):
    make_file("a.jsonl")
    before = fingerprint(resolve_inputs(str(tmp_path / "*.jsonl")))

    make_file("b.jsonl")

    assert fingerprint(resolve_inputs(str(tmp_path / "*.jsonl"))) != before


def test_the_fingerprint_of_many_files_still_fits_a_checkpoint(make_file, tmp_path):
    for n in range(300):
        make_file(f"part-{n:04d}.jsonl", big_payload() if n % 100 == 0 else b'{"a": 1}\n')

    digest = fingerprint(resolve_inputs(str(tmp_path / "*.jsonl")))

    assert len(encode(Checkpoint(run_id="r" * 100, fingerprint=digest))) < 1024
