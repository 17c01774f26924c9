"""Repair: write a damaged HOLD₂ segment again from HOLD₁ — the same batch, the same records.

A segment that no longer matches its ledger entry's seal (truncated, deleted, bytes changed)
cannot be loaded. Where its HOLD₁ file is still there and unchanged up to the batch's end, the
batch is read again from the same position, through the same pipeline, with the same dedupe
decisions (the batch's own keys aside), and written atomically under the same name — but only
if every count comes out as the ledger says; anything else is refused with the reason.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import HoldDamaged, InputError
from bqhold.tasks.core.flatten import Nesting
from bqhold.tasks.core.increments import table_problem
from bqhold.tasks.core.inputs import InputFile, InputFormat, crc32c_of
from bqhold.tasks.core.ledger import LedgerEntry, SourceSpan
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import RunRecord
from bqhold.tasks.core.schema import read_as_text
from bqhold.tasks.core.spool import ensure_local
from bqhold.tasks.core.staging import ROW_HASH, BatchContext, prepare_batch
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.hold_writer import write_segment
from bqhold.tasks.storage.seals import seal_of


def batch_start(run: RunRecord, entries: list[LedgerEntry], batch: int) -> Position:
    """Where in HOLD₁ a committed batch started: where the one before it ended."""
    previous = next((entry for entry in entries if entry.batch == batch - 1), None)
    if previous is not None:
        return previous.end
    first = run.inputs[0]
    return Position(0, first.start_offset, first.start_line, first.start_crc)


def _origin_problem(item: InputFile) -> str | None:
    """Why a compressed file or an object is no longer the version the batch read, or None (its
    plain copy is then made again if it is gone: an object's ranged reads name that version)."""
    if "://" not in item.origin:
        try:
            now = os.stat(item.origin)
        except OSError:
            return f"{item.origin} is gone"
        if (now.st_size, now.st_mtime_ns) != (item.size, item.mtime_ns):
            return f"{item.origin} changed since it was staged"
    try:
        ensure_local(item)
    except InputError as exc:
        return str(exc)
    return None


def _source_problem(item: InputFile, span: SourceSpan) -> str | None:
    """Why `item` no longer holds what the batch read, or None."""
    if item.format is InputFormat.DUCKDB_TABLE:
        return table_problem(item, span.end)
    if item.origin is not None:
        return _origin_problem(item)
    try:
        now = os.stat(item.path)
    except OSError:
        return f"{item.path} is gone"
    if item.format is InputFormat.PARQUET:
        same = (now.st_size, now.st_mtime_ns) == (item.size, item.mtime_ns)
        return None if same else f"{item.path} changed since it was staged"
    if now.st_size < span.end.offset or crc32c_of(item.path, span.end.offset) != span.end.crc:
        return f"{item.path} changed since it was staged"
    return None


def restage_batch(
    store: HoldStore,
    pipeline: Pipeline,
    run: RunRecord,
    entries: list[LedgerEntry],
    entry: LedgerEntry,
    max_record_bytes: int,
    nesting: Nesting = "record",
    null_markers: frozenset[str] = frozenset(),
) -> None:
    """Write one batch's segment again from HOLD₁ and record its new seal; HoldDamaged if it cannot be."""
    cannot = f"batch {entry.batch} of run {run.run_id} cannot be re-staged"
    way_out = f"give the run up with `{run_command('abandon', run.run_id, store.layout.root)}` and re-run its job"
    if entry.source is None:
        raise HoldDamaged(f"{cannot}: it was staged before bqhold recorded where batches end in HOLD₁; {way_out}")
    start = batch_start(run, entries, entry.batch)
    item = run.inputs[start.file_index]
    problem = _source_problem(item, entry.source)
    if problem:
        raise HoldDamaged(f"{cannot}: {problem}; {way_out}")
    known = store.staged_schema(run.job.table)
    text = read_as_text(known, frozenset())
    raw = read_batch(item, start, entry.counters.rows_read, max_record_bytes, text, null_markers=null_markers)
    if raw.end.offset != entry.source.end.offset:
        raise HoldDamaged(
            f"{cannot}: reading it again ends at {raw.end.offset:,}, not {entry.source.end.offset:,} "
            "(was another --max-record-bytes used?)"
        )
    context = BatchContext(
        run_id=run.run_id,
        batch=entry.batch,
        source=item.path,
        loaded_at=datetime.now(UTC),
        key=run.job.key,
        max_error_rate=1.0,  # the batch was accepted when it was committed
        nesting=nesting,
        declared=pipeline.column_types,
    )
    prepared = prepare_batch(
        raw,
        pipeline.transform,
        known,
        context,
        lambda keys: store.find_duplicates(run.job.warehouse, run.job.table, keys, ignoring=(run.run_id, entry.batch)),
    )
    if prepared.counters != entry.counters:
        raise HoldDamaged(f"{cannot}: it now gives {prepared.counters}, the ledger says {entry.counters}; {way_out}")
    committed = store.fingerprints(run.run_id)[entry.batch]
    again = Fingerprint(prepared.rows.height, int(prepared.rows[ROW_HASH].sum()) if prepared.rows.height else 0)
    if not committed.matches(again):
        raise HoldDamaged(
            f"{cannot}: its records now differ from those committed (row hashes; was the run staged with another"
            f" --nesting than {nesting}?); {way_out}"
        )
    segment = store.segment_path(entry)
    write_segment(segment, prepared.rows)
    store.keep_files([segment])
    store.reseal(run.run_id, entry.batch, seal_of(segment))
