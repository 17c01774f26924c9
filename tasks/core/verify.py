"""Verification: the warehouse's own counts per batch against HOLD₂'s ledger."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Verification:
    """The outcome of comparing counts; `ok` means delivered."""

    expected_rows: int
    actual_rows: int
    mismatches: tuple[tuple[int, int, int], ...]  # (batch, expected, actual)

    @property
    def ok(self) -> bool:
        """True when every batch's count matches."""
        return not self.mismatches

    @property
    def mismatched_batches(self) -> list[int]:
        """The batches whose counts differ."""
        return [batch for batch, _, _ in self.mismatches]

    def describe(self) -> str:
        """One line for the user."""
        if self.ok:
            return f"verified: the warehouse holds {self.actual_rows:,} rows for the run, as HOLD₂'s ledger says"
        shown = ", ".join(f"batch {b}: {e:,} staged, {a:,} in the warehouse" for b, e, a in self.mismatches[:3])
        more = f" and {len(self.mismatches) - 3} more" if len(self.mismatches) > 3 else ""
        return (
            f"NOT verified: the warehouse holds {self.actual_rows:,} rows for the run, HOLD₂'s ledger "
            f"{self.expected_rows:,} ({shown}{more}); HOLD₂ is kept"
        )


def compare_counts(expected: dict[int, int], actual: dict[int, int]) -> Verification:
    """Compare per-batch counts; a batch missing on one side counts as 0 there."""
    batches = sorted(set(expected) | set(actual))
    mismatches = tuple(
        (batch, expected.get(batch, 0), actual.get(batch, 0))
        for batch in batches
        if expected.get(batch, 0) != actual.get(batch, 0)
    )
    return Verification(sum(expected.values()), sum(actual.values()), mismatches)


@dataclass(frozen=True)
class ReliedOnRun:
    """A run whose rows another run's delivery counts on, and what the warehouse holds of it."""

    run_id: str
    verification: Verification | None  # None: not delivered yet, nothing to compare
    cleaned: bool = False  # its HOLD₂ segments were removed: it cannot be redelivered

    def way_out(self) -> str:
        """The command that puts this run's rows back."""
        if self.cleaned:
            return (
                f"its HOLD₂ segments were cleaned up, so it cannot be redelivered: run `python flows/run.py abandon "
                f"--run-id {self.run_id}`, then re-run this command to stage its files again from HOLD₁"
            )
        return f"reload them from HOLD₂ with `python flows/run.py redeliver --run-id {self.run_id}`"


@dataclass(frozen=True)
class DeliveryCheck:
    """A run's own verification (None when it loaded nothing new) and that of the runs it relies on:
    the delivered runs of files it skipped, and the runs whose keys made it skip records."""

    own: Verification | None
    relied_on: tuple[ReliedOnRun, ...] = ()

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
        elif not self.failing:
            runs = ", ".join(run.run_id for run in self.relied_on if run.verification is not None)
            parts.append(f"verified: the warehouse holds the {self.actual_rows:,} rows of run(s) {runs}")
        for run in self.failing[:3]:
            shown = ", ".join(
                f"batch {b}: {e:,} staged, {a:,} in the warehouse" for b, e, a in run.verification.mismatches[:2]
            )
            parts.append(
                f"NOT verified: this input's records delivered by run {run.run_id} are not all in the warehouse "
                f"({shown}); {run.way_out()}"
            )
        if self.pending:
            runs = ", ".join(run.run_id for run in self.pending)
            parts.append(f"records skipped as duplicates are held by run(s) {runs}, not delivered yet: resume them")
        return "; ".join(parts)
