"""The generic pipeline: any JSON/CSV/Parquet records, nested objects flattened into columns.

`{"user": {"id": 7}, "tags": ["a", "b"]}` is staged as `user__id = 7`, `tags = '["a","b"]'`
(lists are kept as JSON text), plus bqhold's `_run_id`, `_batch` and `_loaded_at`.
"""

from __future__ import annotations

import polars as pl

from bqhold.flows._runner import pipeline_flow
from bqhold.tasks.core.flatten import flatten
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.records import INTERNAL_COLUMNS


def transform(frame: pl.DataFrame) -> pl.DataFrame:
    """Flatten nested objects into `parent__child` columns; lists become JSON text."""
    return flatten(frame, keep=INTERNAL_COLUMNS)


PIPELINE = Pipeline(
    name="generic",
    transform=transform,
    description="Generic records: nested objects flattened into columns.",
)
generic_flow = pipeline_flow(PIPELINE)
