"""The generic pipeline: any JSON/CSV/Parquet records, staged as they are.

`{"user": {"id": 7}, "tags": ["a", "b"], "ts": "2026-11-30T10:00:00Z"}` is staged as a RECORD
column `user` (`user.id = 7`), a REPEATED STRING column `tags` and a TIMESTAMP `ts` (`--nesting
flatten` makes `user__id` a column instead, `--nesting json` makes `user` a JSON column), plus
bqhold's `_run_id`, `_batch`, `_loaded_at` and `_row_hash`.
"""

from __future__ import annotations

import polars as pl

from bqhold.flows._runner import pipeline_flow
from bqhold.tasks.core.pipeline import Pipeline


def transform(frame: pl.DataFrame) -> pl.DataFrame:
    """The records as read: the runner names and types their fields as it stages them."""
    return frame


PIPELINE = Pipeline(
    name="generic",
    transform=transform,
    description="Generic records: objects as RECORD columns, arrays as REPEATED ones, ISO dates typed.",
)
generic_flow = pipeline_flow(PIPELINE)
