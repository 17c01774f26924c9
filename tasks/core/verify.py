"""Verification: what the warehouse holds of a run, batch by batch, against HOLD₂'s ledger.

Each batch is compared by its row count and, where the ledger recorded one, by the sum of its
rows' `_row_hash` (content: rows deleted and others duplicated keep the count, not the sum).
Rows of the run that belong to no batch of the ledger — no `_batch` at all, or one the ledger
does not have — are foreign: never "verified", and `redeliver` removes them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bqhold.tasks.core.commands import run_command


@dataclass(frozen=True)
class Fingerprint:
    """What one batch holds: its rows, and the sum of their row hashes (None: not recorded)."""

    rows: int
    row_hash_sum: int | None = None

    def matches(self, actual: Fingerprint) -> bool:
        """True when `actual` (the warehouse's) holds what this (the ledger's) says."""
        if self.rows != actual.rows:
            return False
        return self.rows == 0 or self.row_hash_sum is None or self.row_hash_sum == actual.row_hash_sum


ABSENT = Fingerprint(0, 0)  # a batch the warehouse holds no row of


def _rows(n: int) -> str:
    return f"{n:,} row{'' if n == 1 else 's'}"


@dataclass(frozen=True)
class Mismatch:
    """One batch whose rows in the warehouse differ from the ledger's."""

    batch: int | None  # None: rows of the run without a `_batch`
    expected: Fingerprint | None  # None: a batch HOLD₂'s ledger does not have
    actual: Fingerprint

    def describe(self) -> str:
        """A few words for the user."""
        if self.batch is None:
            return f"{_rows(self.actual.rows)} without a batch"
        if self.expected is None:
            return f"batch {self.batch}, not in HOLD₂'s ledger: {_rows(self.actual.rows)}"
        if self.expected.rows == self.actual.rows:
            return f"batch {self.batch}: content differs ({_rows(self.actual.rows)} as staged, not the same rows)"
        return f"batch {self.batch}: {self.expected.rows:,} staged, {self.actual.rows:,} in the warehouse"


@dataclass(frozen=True)
class Verification:
    """The outcome of comparing a run's batches; `ok` means delivered."""

    expected_rows: int
    actual_rows: int
    mismatches: tuple[Mismatch, ...]
    batches: tuple[int, ...] = ()  # every batch of the ledger

    @property
    def ok(self) -> bool:
        """True when every batch matches and no row is foreign."""
        return not self.mismatches

    @property
    def mismatched_batches(self) -> list[int]:
        """The ledger's batches to load again."""
        return [m.batch for m in self.mismatches if m.expected is not None and m.batch is not None]

    @property
    def matching_batches(self) -> list[int]:
        """The ledger's batches the warehouse holds as staged (to keep when repairing)."""
        bad = set(self.mismatched_batches)
        return [batch for batch in self.batches if batch not in bad]

    def differences(self) -> str:
        """The first few mismatches, in a few words each."""
        shown = "; ".join(mismatch.describe() for mismatch in self.mismatches[:3])
        return shown + (f"; and {len(self.mismatches) - 3} more" if len(self.mismatches) > 3 else "")

    def describe(self) -> str:
        """One line for the user."""
        if self.ok:
            return f"verified: the warehouse holds {self.actual_rows:,} rows for the run, as HOLD₂'s ledger says"
        return (
            f"NOT verified: the warehouse holds {self.actual_rows:,} rows for the run, HOLD₂'s ledger "
            f"{self.expected_rows:,} ({self.differences()}); HOLD₂ is kept"
        )


def _order(batch: int | None) -> tuple[bool, int]:
    return batch is not None, batch or 0


def compare(
    expected: dict[int, Fingerprint], actual: dict[int | None, Fingerprint], superseded_ok: bool = False
) -> Verification:
    """Compare per-batch fingerprints; a batch missing from the warehouse holds no row there.
    With `superseded_ok` (a merge or replace run, after later runs), a batch may hold fewer rows
    than staged: a later run updated or replaced them."""
    mismatches = []
    for batch in sorted(set(expected) | set(actual), key=_order):
        wanted, held = expected.get(batch) if batch is not None else None, actual.get(batch, ABSENT)
        superseded = superseded_ok and wanted is not None and held.rows < wanted.rows
        if wanted is None or not (wanted.matches(held) or superseded):
            mismatches.append(Mismatch(batch, wanted, held))
    return Verification(
        expected_rows=sum(f.rows for f in expected.values()),
        actual_rows=sum(f.rows for f in actual.values()),
        mismatches=tuple(mismatches),
        batches=tuple(sorted(expected)),
    )


@dataclass(frozen=True)
class Claim:
    """What the warehouse holds of a run before a load, beyond what HOLD₂ recorded as loaded there."""

    found: tuple[int, ...]  # batches held exactly as staged: our load, cut off before HOLD₂ recorded it
    foreign: tuple[Mismatch, ...]  # rows of the run HOLD₂ did not load (another hold dir's, or tampering)


def claim(expected: dict[int, Fingerprint], present: dict[int | None, Fingerprint], recorded: set[int]) -> Claim:
    """Sort the run's rows in the warehouse that HOLD₂ has no load record of into ours and foreign."""
    found, foreign = [], []
    for batch in sorted((b for b in present if b not in recorded), key=_order):
        wanted = expected.get(batch) if batch is not None else None
        if wanted is not None and wanted.matches(present[batch]):
            found.append(batch)
        else:
            foreign.append(Mismatch(batch, wanted, present[batch]))
    return Claim(tuple(found), tuple(foreign))


@dataclass(frozen=True)
class ReliedOnRun:
    """A run whose rows another run's delivery counts on, and what the warehouse holds of it."""

    run_id: str
    verification: Verification | None  # None: not delivered yet, nothing to compare
    cleaned: bool = False  # its HOLD₂ segments were removed: it cannot be redelivered

    def way_out(self, hold_dir: Path | None) -> str:
        """The command that puts this run's rows back."""
        if self.cleaned:
            return (
                f"its HOLD₂ segments were cleaned up, so it cannot be redelivered: run "
                f"`{run_command('abandon', self.run_id, hold_dir)}`, then re-run this command to stage its files "
                "again from HOLD₁"
            )
        return f"reload them from HOLD₂ with `{run_command('redeliver', self.run_id, hold_dir)}`"


@dataclass(frozen=True)
class DeliveryCheck:
    """A run's own verification (None when it loaded nothing new) and that of the runs it relies on:
    the delivered runs of files it skipped, and the runs whose keys made it skip records."""

    run_id: str
    own: Verification | None
    relied_on: tuple[ReliedOnRun, ...] = ()
    hold_dir: Path | None = None  # for the commands the message names

    @property
    def failing(self) -> list[ReliedOnRun]:
        """Relied-on runs the warehouse does not hold as HOLD₂'s ledger says."""
        return [run for run in self.relied_on if run.verification is not None and not run.verification.ok]

    @property
    def pending(self) -> list[ReliedOnRun]:
        """Relied-on runs not delivered yet (their records are in HOLD₂, waiting)."""
        return [run for run in self.relied_on if run.verification is None]

    @property
    def ok(self) -> bool:
        """True when the warehouse holds this run and every delivered run it relies on."""
        return (self.own is None or self.own.ok) and not self.failing

    @property
    def actual_rows(self) -> int:
        """Rows the warehouse holds for the run, or, when it loaded nothing, for the runs it relies on."""
        if self.own is not None:
            return self.own.actual_rows
        return sum(run.verification.actual_rows for run in self.relied_on if run.verification is not None)

    def describe(self) -> str:
        """One line for the user: what holds, or what is missing and the command that fixes it."""
        parts = []
        if self.own is not None:
            parts.append(self.own.describe())
            if not self.own.ok:
                parts.append(f"to load it again: {run_command('redeliver', self.run_id, self.hold_dir)}")
        elif not self.failing:
            runs = ", ".join(run.run_id for run in self.relied_on if run.verification is not None)
            parts.append(f"verified: the warehouse holds the {self.actual_rows:,} rows of run(s) {runs}")
        for run in self.failing[:3]:
            parts.append(
                f"NOT verified: this input's records delivered by run {run.run_id} are not all in the warehouse "
                f"({run.verification.differences()}); {run.way_out(self.hold_dir)}"
            )
        if self.pending:
            runs = ", ".join(run.run_id for run in self.pending)
            parts.append(f"records skipped as duplicates are held by run(s) {runs}, not delivered yet: resume them")
        return "; ".join(parts)
