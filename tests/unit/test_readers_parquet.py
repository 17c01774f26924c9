"""Parquet reader: row-offset batches cover every row once; unreadable files are InputErrors."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.readers.parquet import parquet_row_count, read_parquet_batch
from bqhold.tasks.core.records import Position
from tests.unit.support import column_values, good_lines, read_all


@pytest.fixture
def parquet_file(tmp_path: Path):
    """Write `rows` rows (columns n, s) as Parquet with row groups of 3; return the path."""

    def make(rows: int = 10, name: str = "input.parquet") -> str:
        path = tmp_path / name
        frame = pl.DataFrame(
            {"n": list(range(rows)), "s": [f"row{n}" for n in range(rows)]}, schema={"n": pl.Int64, "s": pl.String}
        )
        frame.write_parquet(path, row_group_size=3)
        return str(path)

    return make


def reader(path: str):
    return lambda start, max_rows: read_parquet_batch(path, start, max_rows)


@pytest.mark.parametrize("batch_size", [1, 3, 4, 5, 10, 11])
def test_batches_from_row_offsets_cover_every_row_once(parquet_file, batch_size):
    batches = read_all(reader(parquet_file(10)), batch_size)

    assert column_values(batches, "n") == list(range(10))
    assert good_lines(batches) == list(range(1, 11))


def test_exhausted_only_on_the_batch_that_reaches_the_last_row(parquet_file):
    batches = read_all(reader(parquet_file(10)), 4)

    assert [batch.exhausted for batch in batches] == [False, False, True]
    assert [batch.end.offset for batch in batches] == [4, 8, 10]


def test_batch_ending_exactly_at_the_last_row_is_exhausted(parquet_file):
    batches = read_all(reader(parquet_file(10)), 5)

    assert len(batches) == 2
    assert batches[-1].exhausted


def test_batch_reports_rows_read_and_the_next_row_offset(parquet_file):
    batch = read_parquet_batch(parquet_file(10), Position(2, 3, 3), 4)

    assert batch.records_read == 4
    assert batch.end == Position(2, 7, 7)
    assert batch.frame["n"].to_list() == [3, 4, 5, 6]
    assert batch.frame["__line"].to_list() == [4, 5, 6, 7]


def test_empty_parquet_file_gives_an_empty_exhausted_batch(tmp_path):
    path = tmp_path / "empty.parquet"
    pl.DataFrame(schema={"n": pl.Int64}).write_parquet(path)

    batch = read_parquet_batch(str(path), Position(), 5)

    assert batch.frame.height == 0
    assert batch.exhausted


def test_row_count_of_a_parquet_file(parquet_file):
    assert parquet_row_count(parquet_file(10)) == 10


def test_row_count_of_a_non_parquet_file_raises_input_error_naming_it(write_bytes):
    path = write_bytes("fake.parquet", b"id,name\n1,a\n")

    with pytest.raises(InputError, match="fake.parquet"):
        parquet_row_count(path)


def test_row_count_of_a_truncated_parquet_file_raises_input_error(parquet_file, tmp_path):
    data = Path(parquet_file(10)).read_bytes()
    truncated = tmp_path / "truncated.parquet"
    truncated.write_bytes(data[: len(data) // 2])

    with pytest.raises(InputError, match="not a readable Parquet file"):
        parquet_row_count(str(truncated))


def test_reading_a_corrupt_parquet_file_raises_input_error_with_the_row(write_bytes):
    path = write_bytes("fake.parquet", b"not parquet at all")

    with pytest.raises(InputError, match=r"fake\.parquet.*rows from 0"):
        read_parquet_batch(path, Position(), 5)
