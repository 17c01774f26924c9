"""What a pipeline is (a name, a pure transform and a few defaults), and `preview`: its transform
run on a file in-process, as a run would stage it, without Prefect or a HOLD₂."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from bqhold.tasks.core.agents.session import AgentSession
from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES, read_batch
from bqhold.tasks.core.records import Position, QuarantineEntry
from bqhold.tasks.core.staging import META_COLUMNS, Answers, BatchContext, KeyProbe, Transform, prepare_batch
from bqhold.tasks.core.stop import StopRequest

if TYPE_CHECKING:
    from bqhold.tasks.core.agents.spec import Agent
    from bqhold.tasks.core.options import JobOptions


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: `transform` maps a batch's frame to the rows to stage.

    The transform receives records as read: nested objects as structs, plus `__line` and
    `__offset`, each record's position in its file. It returns a frame; the runner flattens what
    is still nested. Positions are the runner's: a transform that keeps one row per record, in
    order, may drop them (they are put back by row); one that filters, explodes or sorts rows
    keeps them, as polars does by itself. Setting a `_quarantine_reason` column to a non-null
    text rejects that row: it is quarantined with its record's original bytes.

    An agent pipeline also names `agent`: it builds the run's Agent from the job's options
    (tasks/core/agents/spec.py). The agent is called for each record the transform keeps that is
    staged (after dedupe), and its outputs become columns of the record's row.

    `description` describes a new warehouse table, `column_descriptions` its columns (BigQuery
    shows both; DuckDB keeps them as comments); `partition_by` and `cluster_by` lay it out when
    the options (--partition-by, --cluster-by) do not. `column_types` declares the staged type of
    columns the pipeline knows better than their values do (`{"zip": ColumnType.STRING}`): a new
    column takes it instead of the type its first values give; values that do not fit it are
    quarantined.
    """

    name: str
    transform: Transform
    description: str
    default_key: str | None = None
    agent: Callable[[JobOptions], Agent] | None = None
    column_types: Schema = field(default_factory=dict)
    column_descriptions: dict[str, str] = field(default_factory=dict)  # a new warehouse table's, by column
    partition_by: str | None = None  # the table's partitioning when --partition-by names none
    cluster_by: str | None = None  # its clustering when --cluster-by names none


@dataclass(frozen=True)
class Preview:
    """What a run would stage from the start of a file: the rows (without bqhold's own
    `_run_id`, `_batch`, `_loaded_at`, `_row_hash`) and the records it would quarantine."""

    rows: pl.DataFrame
    quarantined: tuple[QuarantineEntry, ...]


def _nothing_staged(keys: pl.Series) -> KeyProbe:
    """A HOLD₂ that holds no key yet: only duplicates within the file are skipped."""
    return KeyProbe(staged=pl.Series([False] * keys.len()), hashes=pl.Series([0] * keys.len(), dtype=pl.UInt64))


def preview(
    pipeline: Pipeline, path: str | Path, rows: int = 100, key: str | None = None, options: JobOptions | None = None
) -> Preview:
    """Run `pipeline`'s transform on the first `rows` records of one file, as a run would stage them.

    The file is read by the run's reader and goes through the run's staging (positions,
    flattening, types, quarantine, dedupe on `key`, by default the pipeline's), so a test of a
    transform sees what would reach the warehouse. Bad records are quarantined, never fatal:
    the preview shows them all (a run stops above --max-error-rate). An agent pipeline's agent is
    called too when `options` (its --agent-* settings) are given; its call log lives in a
    temporary directory.

        >>> from bqhold.flows.web_events import PIPELINE
        >>> preview(PIPELINE, "flows/sample/events.jsonl", rows=3).rows["event_type"].to_list()
        ['page_view', 'click', 'click']
    """
    files = resolve_inputs(str(path))
    if len(files) != 1:
        raise InputError(f"{path}: names {len(files)} files; preview reads one")
    (item,) = files
    raw = read_batch(
        item, Position(), rows, DEFAULT_MAX_RECORD_BYTES, null_markers=options.null_markers if options else frozenset()
    )
    context = BatchContext(
        run_id="preview",
        batch=1,
        source=item.path,
        loaded_at=datetime.now(UTC),
        key=key or pipeline.default_key,
        max_error_rate=1.0,
        nesting=options.nesting if options else "record",
        declared=pipeline.column_types,
    )
    with _agent_answers(pipeline, options) as answers:
        prepared = prepare_batch(raw, pipeline.transform, {}, context, _nothing_staged, answers)
    return Preview(prepared.rows.drop(list(META_COLUMNS)), tuple(prepared.quarantined))


@contextmanager
def _agent_answers(pipeline: Pipeline, options: JobOptions | None) -> Iterator[Answers | None]:
    """The pipeline's agent for a preview (None without an agent or options to build it from)."""
    if pipeline.agent is None or options is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="bqhold-preview-") as scratch:
        session = AgentSession(pipeline.agent(options), Path(scratch), StopRequest())
        try:
            yield lambda frame: session.answer(frame, 0)
        finally:
            session.close()
