"""Group staged batches into few warehouse loads, with names that a retry finds again."""

from __future__ import annotations

from dataclasses import dataclass

from tasks.core.ledger import LedgerEntry

EMPTY_LOAD = "empty"


@dataclass(frozen=True)
class LoadGroup:
    """Consecutive batches loaded together; `load_id` follows from the run and the batches."""

    run_id: str
    load_id: str
    batches: tuple[int, ...]
    segments: tuple[str, ...]  # relative to the hold directory
    rows: int


def load_id_for(run_id: str, first: int, last: int) -> str:
    """The deterministic name of the load of batches first..last of a run."""
    return f"{run_id}-b{first:06d}-{last:06d}"


def plan_loads(entries: list[LedgerEntry], max_batches: int = 200) -> tuple[list[LoadGroup], list[int]]:
    """Groups of unloaded batches that hold rows, and the unloaded batches that hold none."""
    pending = sorted((e for e in entries if e.load_id is None), key=lambda e: e.batch)
    empty = [e.batch for e in pending if e.counters.rows_written == 0]
    with_rows = [e for e in pending if e.counters.rows_written > 0]
    groups = []
    for start in range(0, len(with_rows), max_batches):
        part = with_rows[start : start + max_batches]
        groups.append(
            LoadGroup(
                run_id=part[0].run_id,
                load_id=load_id_for(part[0].run_id, part[0].batch, part[-1].batch),
                batches=tuple(e.batch for e in part),
                segments=tuple(e.segment for e in part),
                rows=sum(e.counters.rows_written for e in part),
            )
        )
    return groups, empty
