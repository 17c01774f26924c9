"""A load group's Parquet segments as the one file a load job takes.

Segments of later batches may have columns earlier ones lack, and Parquet files cannot be
concatenated byte by byte as JSON lines can: a group of Parquet segments is rewritten, streamed
(one row group at a time), as one file with every column of the load's schema, NULL where a
segment has none.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from bqhold.tasks.core.column_types import Schema, polars_type
from bqhold.tasks.core.schema import restaged

CONTENT_TYPES = {".parquet": "application/vnd.apache.parquet", ".jsonl": "application/x-ndjson"}


def is_parquet(files: list[Path]) -> bool:
    """Whether a load group's segments are Parquet (a group never mixes formats)."""
    return bool(files) and files[0].suffix == ".parquet"


def _conformed(path: Path, schema: Schema) -> pl.LazyFrame:
    present = pl.read_parquet_schema(path)
    return pl.scan_parquet(path).select(
        restaged(name, present[name], kind) if name in present else pl.lit(None, polars_type(kind)).alias(name)
        for name, kind in schema.items()
    )


def one_parquet(files: list[Path], schema: Schema, path: Path) -> Path:
    """Write the Parquet segments `files` as the one file `path`, with the columns of `schema`."""
    pl.concat([_conformed(file, schema) for file in files]).sink_parquet(path)
    return path
