"""Write one prepared batch into HOLD₂ — the commit order that makes any crash recoverable.

    1. segment (Parquet or JSONL): temp file, fsync, rename, fsync dir   (faults: segment_fsynced, segment_renamed);
       its size and crc32c (the seal) go into the ledger entry, and every load checks them
    2. quarantine JSONL, the same way (only if the batch rejected records), after the side
       files of its large records
    2b. on a durable HOLD₂ (--hold-url): the files copied to the bucket   (fault: hold_uploaded)
    3. one DuckDB transaction: new columns + dedupe keys + ledger entry   <- the commit point
       (the rows are only in the segment; the database shows them through a view); on a
       durable HOLD₂ the change is written to its journal just before COMMIT, and counts from
       then on (fault: journal_written): a working copy that missed the COMMIT applies it
    4. checkpoint: temp, fsync, rename                        (faults: ledger_committed, checkpoint_written)

A crash before 3 leaves at most a temp file (swept on resume) or a segment/quarantine file
that no ledger entry names: the batch is redone from the old checkpoint and its files are
replaced under the same names; loads only read files the ledger names. A crash between 3
and 4 leaves the checkpoint one batch behind the ledger, and resume rolls it forward from
the ledger. Nothing in HOLD₂ is ever rewritten: each batch adds its own files and rows.
Each named crash point and what a re-run does there: docs/design.md, Commit order.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core import faults
from bqhold.tasks.core import quarantine as quarantines
from bqhold.tasks.core.atomic import atomic_write, atomic_write_to, sweep_temp_files
from bqhold.tasks.core.checkpoint import Checkpoint
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.ledger import LedgerEntry, SegmentSeal, SourceSpan
from bqhold.tasks.core.memory import GuardDecision
from bqhold.tasks.core.metrics import StageMetric
from bqhold.tasks.core.readers.originals import ByteRange, csv_header, original
from bqhold.tasks.core.records import Position, QuarantineEntry, RecordFormat
from bqhold.tasks.core.staging import PreparedBatch
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.seals import seal_of


@dataclass(frozen=True)
class BatchEnd:
    """Where a batch leaves HOLD₁: where the next one starts, and how far it read its own file."""

    next_start: Position
    input_done: bool  # no batch follows
    source: SourceSpan


@dataclass(frozen=True)
class CommittedBatch:
    """What one committed batch left in HOLD₂, and how its stages went."""

    entry: LedgerEntry
    checkpoint: Checkpoint
    bytes_per_row: float  # input bytes per record in this batch (for the memory guard)
    timings: tuple[StageMetric, ...] = ()


def write_segment(path: Path, rows: pl.DataFrame, before_rename: Callable[[], None] | None = None) -> int:
    """Write a batch's staged rows as the segment `path` (Parquet or JSONL, by its suffix),
    atomically; return its size.

    Polars writes the temp path itself: handed a Python file object it would first build the
    whole segment in memory (~23 MB per 50k-row batch of JSONL)."""
    write = rows.write_parquet if path.suffix == ".parquet" else rows.write_ndjson
    return atomic_write_to(path, write, before_rename)


def _write_quarantine(path: Path, entries: list[QuarantineEntry], run_id: str, batch: int) -> list[Path]:
    """The batch's quarantine file, each record with its original bytes read back from the
    source: inline, or streamed into a side file next to it (written first, atomically too);
    return the files written."""
    headers: dict[str, bytes] = {}
    lines, files = [], []
    for index, entry in enumerate(entries):
        header = None
        if entry.format is RecordFormat.CSV and entry.record is None:
            if entry.source not in headers:
                headers[entry.source] = csv_header(entry.source)
            header = headers[entry.source]
        found = original(entry, quarantines.INLINE_BYTES)
        if isinstance(found, ByteRange):
            side = path.with_name(quarantines.side_file_name(batch, entry, index))
            atomic_write(side, found.copy_to)
            files.append(side)
            lines.append(quarantines.entry_line(entry, run_id, batch, None, side.name, found.size, header))
        else:
            lines.append(quarantines.entry_line(entry, run_id, batch, found, header=header))
    body = "".join(f"{line}\n" for line in lines).encode()
    atomic_write(path, lambda handle: handle.write(body))
    return [*files, path]


def sweep_run(layout: HoldLayout, run_id: str) -> int:
    """Remove temp files a crash left in a run's directories; return how many."""
    return sum(sweep_temp_files(d) for d in (layout.segments_dir(run_id), layout.quarantine_dir(run_id)))


def write_batch(
    run: BatchRun, previous: Checkpoint, prepared: PreparedBatch, end: BatchEnd, sizing: GuardDecision
) -> CommittedBatch:
    """Make one batch durable in HOLD₂ and advance the checkpoint, in the order above."""
    layout, batch = run.store.layout, previous.next_batch
    segment = layout.segment(run.run_id, batch, run.options.segment_format)
    quarantine = layout.quarantine(run.run_id, batch) if prepared.quarantined else None
    timings = run.metrics.timings(batch, sizing.size, sizing.reason)

    def write_files() -> SegmentSeal:
        write_segment(segment, prepared.rows, before_rename=lambda: faults.reached("segment_fsynced", batch))
        faults.reached("segment_renamed", batch)
        files = [segment]
        if quarantine is not None:
            files += _write_quarantine(quarantine, prepared.quarantined, run.run_id, batch)
        # Read back from the page cache (~2 ms per 18 MB): what a later load checks the file against.
        seal = seal_of(segment)
        if run.store.durable:
            run.store.keep_files(files)
            faults.reached("hold_uploaded", batch)
        return seal

    entry = LedgerEntry(
        run_id=run.run_id,
        batch=batch,
        segment=str(segment.relative_to(layout.root)),
        quarantine=str(quarantine.relative_to(layout.root)) if quarantine else None,
        counters=prepared.counters,
        end=end.next_start,
        input_done=end.input_done,
        source=end.source,
    )
    # Steps 1-2 run beside the DuckDB inserts (both release the GIL); COMMIT waits for them.
    with timings.stage("write") as stage, ThreadPoolExecutor(1, thread_name_prefix="bqhold-segment") as pool:
        stage.rows = prepared.rows.height
        written = pool.submit(write_files)
        run.store.commit_batch(run.table, run.warehouse, entry, prepared, written.result)
    faults.reached("ledger_committed", batch)
    advanced = previous.advanced(end.next_start, prepared.counters, end.input_done, sizing.size)
    with timings.stage("checkpoint"):
        checkpoints.save(layout.checkpoint(run.run_id), advanced)
    faults.reached("checkpoint_written", batch)
    return CommittedBatch(entry, advanced, prepared.bytes_per_row, tuple(timings.records))
