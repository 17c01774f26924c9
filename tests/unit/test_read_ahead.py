"""A batch read ahead is the batch that asks for it, or it is dropped: on real files, read by the
real reader in its thread. The file is rewritten after the read ahead finished, so which bytes a
batch holds shows whether it was read ahead or read anew."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pytest

from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.read_ahead import ReadAhead, ReadRequest
from bqhold.tasks.core.records import EXACT_PARSE, Position


def write(path: Path, label: str) -> None:
    path.write_text("".join(json.dumps({"id": f"{label}{n}"}) + "\n" for n in range(6)))


def request(path: Path, size: int = 3) -> ReadRequest:
    [item] = resolve_inputs(str(path))
    return ReadRequest(item, Position(), size, 1 << 20, frozenset(), EXACT_PARSE)


def ids(batch) -> list[str]:
    return batch.frame["id"].to_list()


@pytest.fixture
def ahead():
    reader = ReadAhead()
    yield reader
    reader.close()


def finished(reader: ReadAhead) -> None:
    """Wait until the read made ahead is done (it runs in its own thread)."""
    deadline = time.monotonic() + 10
    while not reader._pending[1].done():
        assert time.monotonic() < deadline
        time.sleep(0.01)


def read_ahead_then_rewrite(ahead: ReadAhead, path: Path) -> ReadRequest:
    """The first batch of `path` ("old" records) read ahead to its end, then the file rewritten
    with "new" ones; the request, as the run made it (a run resolves its inputs once)."""
    write(path, "old")
    batch = request(path)
    ahead.start(batch)
    finished(ahead)
    write(path, "new")
    return batch


def test_the_batch_read_ahead_is_the_one_taken(tmp_path: Path, ahead: ReadAhead) -> None:
    path = tmp_path / "in.jsonl"
    batch = read_ahead_then_rewrite(ahead, path)

    assert ids(ahead.read(batch)) == ["old0", "old1", "old2"]
    assert ids(ahead.read(batch)) == ["new0", "new1", "new2"], "taken once, then read anew"


def test_a_read_ahead_of_another_batch_is_dropped_and_the_batch_reads_for_itself(
    tmp_path: Path, ahead: ReadAhead
) -> None:
    batch = read_ahead_then_rewrite(ahead, tmp_path / "in.jsonl")

    assert ids(ahead.read(replace(batch, size=2))) == ["new0", "new1"]  # (a batch retried smaller)


def test_the_error_of_a_dropped_read_is_nobodys_and_that_of_a_taken_one_is_the_batchs(
    tmp_path: Path, ahead: ReadAhead
) -> None:
    path = tmp_path / "in.jsonl"
    write(path, "a")
    gone = request(path, size=4)
    path.unlink()
    ahead.start(gone)
    finished(ahead)
    write(path, "b")

    assert ids(ahead.read(request(path))) == ["b0", "b1", "b2"]
    path.unlink()
    ahead.start(gone)
    with pytest.raises(OSError):
        ahead.read(gone)
