"""What a pipeline is (a name, a pure transform and a few defaults), and `preview`: its transform
run on a file in-process, as a run would stage it, without Prefect or a HOLD₂."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES, read_batch
from bqhold.tasks.core.records import Position, QuarantineEntry
from bqhold.tasks.core.staging import META_COLUMNS, BatchContext, KeyProbe, Transform, prepare_batch


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: `transform` maps a batch's frame to the rows to stage.

    The transform receives records as read: nested objects as structs, plus `__line` and
    `__offset`, each record's position in its file. It returns a frame; the runner flattens what
    is still nested. Positions are the runner's: a transform that keeps one row per record, in
    order, may drop them (they are put back by row); one that filters, explodes or sorts rows
    keeps them, as polars does by itself. Setting a `_quarantine_reason` column to a non-null
    text rejects that row: it is quarantined with its record's original bytes.
    """

    name: str
    transform: Transform
    description: str
    default_key: str | None = None


@dataclass(frozen=True)
class Preview:
    """What a run would stage from the start of a file: the rows (without bqhold's own
    `_run_id`, `_batch`, `_loaded_at`, `_row_hash`) and the records it would quarantine."""

    rows: pl.DataFrame
    quarantined: tuple[QuarantineEntry, ...]


def _nothing_staged(keys: pl.Series) -> KeyProbe:
    """A HOLD₂ that holds no key yet: only duplicates within the file are skipped."""
    return KeyProbe(staged=pl.Series([False] * keys.len()), hashes=pl.Series([0] * keys.len(), dtype=pl.UInt64))


def preview(pipeline: Pipeline, path: str | Path, rows: int = 100, key: str | None = None) -> Preview:
    """Run `pipeline`'s transform on the first `rows` records of one file, as a run would stage them.

    The file is read by the run's reader and goes through the run's staging (positions,
    flattening, types, quarantine, dedupe on `key`, by default the pipeline's), so a test of a
    transform sees what would reach the warehouse. Bad records are quarantined, never fatal:
    the preview shows them all (a run stops above --max-error-rate).

        >>> from bqhold.flows.web_events import PIPELINE
        >>> preview(PIPELINE, "flows/sample/events.jsonl", rows=3).rows["event_type"].to_list()
        ['page_view', 'click', 'click']
    """
    files = resolve_inputs(str(path))
    if len(files) != 1:
        raise InputError(f"{path}: names {len(files)} files; preview reads one")
    (item,) = files
    raw = read_batch(item, Position(), rows, DEFAULT_MAX_RECORD_BYTES)
    context = BatchContext(
        run_id="preview",
        batch=1,
        source=item.path,
        loaded_at=datetime.now(UTC),
        key=key or pipeline.default_key,
        max_error_rate=1.0,
    )
    prepared = prepare_batch(raw, pipeline.transform, {}, context, _nothing_staged)
    return Preview(prepared.rows.drop(list(META_COLUMNS)), tuple(prepared.quarantined))
