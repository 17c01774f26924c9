"""Segments are written by polars straight to a temp path: the bytes on disk are the ones the
old write through a Python file object gave, and the file still appears atomically."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import polars as pl
import pytest

from bqhold.flows.generic import transform
from bqhold.flows.run import SAMPLE_INPUT, SAMPLE_KEY
from bqhold.tasks.core.atomic import TEMP_SUFFIX
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.staging import BatchContext, KeyProbe, prepare_batch
from bqhold.tasks.storage.hold_writer import write_segment


def through_file_object(rows: pl.DataFrame) -> bytes:
    """The segment as it was written before: polars into a Python file object."""
    buffer = io.BytesIO()
    rows.write_ndjson(buffer)
    return buffer.getvalue()


def sample_batch() -> pl.DataFrame:
    """The bundled sample's first batch, staged as the generic pipeline stages it."""
    (item,) = resolve_inputs(str(SAMPLE_INPUT))
    raw = read_batch(item, Position(), 1000)
    context = BatchContext(
        run_id="run-1", batch=0, source=item.path, loaded_at=datetime(2026, 1, 2, tzinfo=UTC), key=SAMPLE_KEY
    )
    nothing_staged = lambda keys: KeyProbe(pl.Series([False] * keys.len()), pl.Series(range(keys.len())))  # noqa: E731
    return prepare_batch(raw, transform, {}, context, nothing_staged).rows


AWKWARD = pl.DataFrame(
    {
        "text": ["plain", 'quote " back\\slash', "line\nbreak\ttab\u2028", "ünï €😀", None, ""],
        "number": [0, -1, 2**62, None, 7, 1],
        "ratio": [0.1, 1e300, -0.0, float("nan"), None, 3.0],
        "flag": [True, False, None, True, False, True],
        "day": [date(2026, 1, 2), None, date(1970, 1, 1), date(2000, 2, 29), date(1, 1, 1), date(9999, 12, 31)],
        "at": [datetime(2026, 1, 2, 3, 4, 5, 123456, tzinfo=UTC), None, *[datetime(1970, 1, 1, tzinfo=UTC)] * 4],
    }
)


@pytest.mark.parametrize("rows", [sample_batch(), AWKWARD, AWKWARD.clear()], ids=["sample", "awkward", "empty"])
def test_the_segment_on_disk_is_byte_identical_to_the_file_object_write(tmp_path: Path, rows: pl.DataFrame):
    segment = tmp_path / "segments" / "batch-000000.jsonl"

    size = write_segment(segment, rows)

    assert segment.read_bytes() == through_file_object(rows)
    assert size == segment.stat().st_size
    assert [p.name for p in segment.parent.iterdir()] == [segment.name]


def test_the_segment_is_complete_in_its_temp_file_before_the_rename(tmp_path: Path):
    segment, rows = tmp_path / "batch-000001.jsonl", sample_batch()
    seen = []

    write_segment(segment, rows, before_rename=lambda: seen.extend(p.read_bytes() for p in tmp_path.iterdir()))

    assert seen == [through_file_object(rows)]


def test_a_crash_before_the_rename_leaves_the_old_segment_and_no_temp_file(tmp_path: Path):
    segment = tmp_path / "batch-000002.jsonl"
    write_segment(segment, AWKWARD)

    def crash() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_segment(segment, sample_batch(), before_rename=crash)

    assert segment.read_bytes() == through_file_object(AWKWARD)
    assert list(tmp_path.glob(f"*{TEMP_SUFFIX}")) == []
