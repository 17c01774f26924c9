"""Seals: what a segment file held when its batch committed (size, crc32c), and the check that
every load makes against them, so a truncated, deleted or altered segment is never loaded."""

from __future__ import annotations

from pathlib import Path

from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import HoldDamaged
from bqhold.tasks.core.inputs import crc32c_of
from bqhold.tasks.core.ledger import LedgerEntry, SegmentSeal
from bqhold.tasks.storage.hold_store import HoldStore


def seal_of(path: Path) -> SegmentSeal:
    """The size and crc32c of a segment file as it is on disk now."""
    return SegmentSeal(path.stat().st_size, crc32c_of(str(path)))


def segment_problem(store: HoldStore, entry: LedgerEntry) -> str | None:
    """How a batch's segment file differs from what its ledger entry sealed, or None."""
    path = store.segment_path(entry)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "it is missing"
    seal = entry.seal
    if seal is None:  # sealed before seals were recorded: only its presence can be checked
        return None
    if size != seal.size:
        return f"it has {size:,} bytes, {seal.size:,} were committed"
    if crc32c_of(str(path)) != seal.crc:
        return "its bytes differ from those committed (crc32c mismatch)"
    return None


def damaged_error(entry: LedgerEntry, problem: str, hold_dir: Path) -> HoldDamaged:
    """The one-line error for a damaged segment, with the way to repair it."""
    return HoldDamaged(
        f"HOLD₂ segment {entry.segment} (batch {entry.batch} of run {entry.run_id}) is damaged: {problem}. "
        f"Re-stage it from HOLD₁ with `{run_command('repair', entry.run_id, hold_dir)}`, then re-run"
    )


def check_sealed(store: HoldStore, entry: LedgerEntry) -> None:
    """Refuse to load a segment that is not what its batch committed."""
    problem = segment_problem(store, entry)
    if problem:
        raise damaged_error(entry, problem, store.layout.root)
