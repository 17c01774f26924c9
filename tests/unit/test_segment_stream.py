"""Several segment files read as one seekable upload stream."""

from __future__ import annotations

import io

import pytest

from bqhold.tasks.storage.segment_stream import ConcatenatedFiles


@pytest.fixture
def files(tmp_path):
    contents = [b"first\n", b"", b"second line\n", b"third\n" * 1000]
    paths = []
    for i, data in enumerate(contents):
        path = tmp_path / f"part-{i}.jsonl"
        path.write_bytes(data)
        paths.append(path)
    return paths, b"".join(contents)


def test_reads_all_files_in_order_with_small_and_large_reads(files):
    paths, expected = files
    for chunk in (1, 7, 4096, 1 << 20):
        with ConcatenatedFiles(paths) as stream:
            pieces = iter(lambda stream=stream, chunk=chunk: stream.read(chunk), b"")
            assert b"".join(pieces) == expected
            assert stream.size == len(expected)


def test_seek_and_reread_from_the_start_and_the_middle(files):
    paths, expected = files
    with ConcatenatedFiles(paths) as stream:
        stream.read(100)
        stream.seek(0)
        assert stream.read() == expected
        stream.seek(10)
        assert stream.read(20) == expected[10:30]
        assert stream.seek(0, io.SEEK_END) == len(expected)
        assert stream.read() == b""


def test_buffered_reader_over_it_works(files):
    paths, expected = files
    with io.BufferedReader(ConcatenatedFiles(paths)) as stream:
        assert stream.read() == expected
