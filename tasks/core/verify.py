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
