"""Group staged batches into few warehouse loads, with names that a retry finds again."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from bqhold.tasks.core.ledger import LedgerEntry

EMPTY_LOAD = "empty"
FOUND_LOAD = "found"  # batches the warehouse already held exactly as staged (a load cut off before its record)
DEFAULT_MAX_GROUP_BYTES = 1 << 30  # one upload of up to 1 GiB per load job
_JOB_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class LoadGroup:
    """Consecutive batches loaded together; `load_id` follows from the run and the batches."""

    run_id: str
    load_id: str
    batches: tuple[int, ...]
    segments: tuple[str, ...]  # relative to the hold directory
    rows: int
    hold_id: str  # the HOLD₂ the group is loaded from


def load_id_for(run_id: str, first: int, last: int) -> str:
    """The deterministic name of the load of batches first..last of a run."""
    return f"{run_id}-b{first:06d}-{last:06d}"


def job_id_for(group: LoadGroup, delivery: int, attempt: int) -> str:
    """The BigQuery job id of one attempt of one delivery of a load group.

    A retry of the same attempt reuses it (and meets 409 if the first try got through); a job
    that failed gets the next attempt; an explicit redelivery starts the next delivery. The hold
    id makes it unique to this HOLD₂: another hold dir using the same --run-id never meets it.
    """
    return f"bqhold_{_JOB_ID_UNSAFE.sub('_', group.load_id)}_h{group.hold_id}_d{delivery}_a{attempt}"


def _split(
    entries: list[LedgerEntry], max_batches: int, max_bytes: int, sizes: dict[int, int]
) -> list[list[LedgerEntry]]:
    parts: list[list[LedgerEntry]] = []
    current: list[LedgerEntry] = []
    current_bytes = 0
    for entry in entries:
        size = sizes.get(entry.batch, 0)
        full = len(current) >= max_batches or current_bytes + size > max_bytes
        # A load job reads one format: a run resumed with another --segment-format starts a group.
        if current and (full or PurePosixPath(entry.segment).suffix != PurePosixPath(current[-1].segment).suffix):
            parts.append(current)
            current, current_bytes = [], 0
        current.append(entry)
        current_bytes += size
    if current:
        parts.append(current)
    return parts


def plan_loads(
    entries: list[LedgerEntry],
    hold_id: str,
    max_batches: int = 500,
    max_bytes: int = DEFAULT_MAX_GROUP_BYTES,
    sizes: dict[int, int] | None = None,
) -> tuple[list[LoadGroup], list[int]]:
    """Groups of unloaded batches that hold rows, and the unloaded batches that hold none.

    Few groups keep BigQuery's daily load-job quota (~1,500 per table) far away; `sizes`
    (segment bytes per batch) bounds each group's upload.
    """
    pending = sorted((e for e in entries if e.load_id is None), key=lambda e: e.batch)
    empty = [e.batch for e in pending if e.counters.rows_written == 0]
    with_rows = [e for e in pending if e.counters.rows_written > 0]
    groups = []
    for part in _split(with_rows, max_batches, max_bytes, sizes or {}):
        groups.append(
            LoadGroup(
                run_id=part[0].run_id,
                load_id=load_id_for(part[0].run_id, part[0].batch, part[-1].batch),
                batches=tuple(e.batch for e in part),
                segments=tuple(e.segment for e in part),
                rows=sum(e.counters.rows_written for e in part),
                hold_id=hold_id,
            )
        )
    return groups, empty
