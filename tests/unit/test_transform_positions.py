"""The runner carries each record's source position through a pipeline's transform: a rejected
row points back to its record whether the transform kept `__line`/`__offset` or not."""

from __future__ import annotations

import polars as pl
import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.pipeline import Pipeline, preview
from bqhold.tasks.core.records import QUARANTINE_REASON

RECORDS = b'{"id": 1, "n": 5}\n{"id": 2, "n": -1}\n{"id": 3, "n": 7}\n'
NEGATIVE = pl.when(pl.col("n") < 0).then(pl.lit("negative n")).alias(QUARANTINE_REASON)


def pipeline(transform) -> Pipeline:
    return Pipeline(name="test", transform=transform, description="a transform under test")


def test_a_transform_that_selects_only_its_fields_still_quarantines_the_right_record(write_bytes):
    path = write_bytes("in.jsonl", RECORDS)

    result = preview(pipeline(lambda frame: frame.select("id", NEGATIVE)), path)

    assert result.rows.to_dicts() == [{"id": 1}, {"id": 3}]
    [entry] = result.quarantined
    assert (entry.line, entry.reason) == (2, "negative n")
    assert entry.offset == RECORDS.index(b'{"id": 2'), "where the record's own bytes are"


def test_a_filtering_transform_that_keeps_the_positions_quarantines_the_right_record(write_bytes):
    path = write_bytes("in.jsonl", RECORDS)

    result = preview(pipeline(lambda frame: frame.filter(pl.col("id") != 1).with_columns(NEGATIVE)), path)

    assert result.rows["id"].to_list() == [3]
    assert [(entry.line, entry.reason) for entry in result.quarantined] == [(2, "negative n")]


def test_an_exploding_transform_points_each_row_at_the_record_it_came_from(write_bytes):
    path = write_bytes("in.jsonl", b'{"id": 1, "ns": [5]}\n{"id": 2, "ns": [6, -1]}\n')

    result = preview(pipeline(lambda frame: frame.explode("ns").rename({"ns": "n"}).with_columns(NEGATIVE)), path)

    assert result.rows.to_dicts() == [{"id": 1, "n": 5}, {"id": 2, "n": 6}]
    assert [(entry.line, entry.reason) for entry in result.quarantined] == [(2, "negative n")]


def test_a_transform_that_drops_rows_and_their_positions_is_refused_with_what_to_keep(write_bytes):
    path = write_bytes("in.jsonl", RECORDS)

    def keep_positive(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.filter(pl.col("n") > 0).select("id")

    with pytest.raises(ConfigError) as refused:
        preview(pipeline(keep_positive), path)

    message = str(refused.value)
    assert "keep_positive turned 3 records into 2 rows and dropped __line, __offset" in message
    assert "keep those columns" in message
