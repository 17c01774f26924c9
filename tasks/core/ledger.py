"""HOLD₂'s ledger: one entry per committed batch, the authority on what a run has staged."""

from __future__ import annotations

from dataclasses import dataclass, replace

from bqhold.tasks.core.checkpoint import Checkpoint, Counters, Phase
from bqhold.tasks.core.records import Position


@dataclass(frozen=True)
class SourceSpan:
    """Where in its own HOLD₁ file a batch stopped, and what that file looked like there."""

    end: Position  # file_index is the batch's file; crc covers the file's bytes before end.offset
    done: bool  # the batch read the file to its end
    size: int | None = None  # the file's size and mtime when its end was reached (done only)
    mtime_ns: int | None = None


@dataclass(frozen=True)
class SegmentSeal:
    """What a segment file held when it was committed: checked before it is loaded."""

    size: int
    crc: int  # crc32c of the whole file


@dataclass(frozen=True)
class LedgerEntry:
    """One committed batch: its files, its counts and where in HOLD₁ it ended."""

    run_id: str
    batch: int
    segment: str  # path relative to the hold directory
    quarantine: str | None
    counters: Counters
    end: Position  # where the next batch starts (in the next file once this one is used up)
    input_done: bool
    load_id: str | None = None  # set once the warehouse holds the batch
    source: SourceSpan | None = None  # None in ledgers written before sources were tracked
    seal: SegmentSeal | None = None  # likewise


def tip_checkpoint(run_id: str, fingerprint: str, entries: list[LedgerEntry], batch_size: int) -> Checkpoint:
    """The checkpoint the ledger implies: after its last batch, with summed counters."""
    if not entries:
        return Checkpoint(run_id=run_id, fingerprint=fingerprint, batch_size=batch_size)
    last = max(entries, key=lambda entry: entry.batch)
    total = sum((entry.counters for entry in entries), Counters())
    return Checkpoint(
        run_id=run_id,
        fingerprint=fingerprint,
        next_batch=last.batch + 1,
        position=last.end,
        counters=total,
        batch_size=batch_size,
        phase=Phase.LOADING if last.input_done else Phase.STAGING,
        input_done=last.input_done,
    )


def reconcile(saved: Checkpoint | None, implied: Checkpoint) -> tuple[Checkpoint, str | None]:
    """The checkpoint to resume from, and a note when the saved one had to be corrected.

    The ledger commits before the checkpoint is written, so a crash in between leaves the
    checkpoint one batch behind; any other disagreement also defers to the ledger.
    """
    if saved is None:
        return implied, None
    agrees = (
        saved.next_batch == implied.next_batch
        and saved.position == implied.position
        and saved.counters == implied.counters
        and saved.input_done == implied.input_done
    )
    if agrees:
        phase = saved.phase if saved.phase is not Phase.STAGING else implied.phase
        return replace(saved, phase=phase), None
    note = (
        f"checkpoint said batch {saved.next_batch}, HOLD₂'s ledger has {implied.next_batch} committed "
        f"batch(es): continuing from the ledger"
    )
    return replace(implied, batch_size=saved.batch_size or implied.batch_size), note
