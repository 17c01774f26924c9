"""The run summary: the keys scripts rely on (docs/design.md, Summary keys), and its text for people."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from bqhold.tasks.core.atomic import atomic_write_bytes
from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import ExitCode

NO_RUN = "(none)"  # the run_id of a summary written when the command failed before choosing a run


def redeliver_command(run_id: str, hold_dir: Path) -> str:
    """The command that loads a staged run into the warehouse again from HOLD₂ and verifies it."""
    return run_command("redeliver", run_id, hold_dir)


@dataclass(frozen=True)
class RunSummary:
    """What a run did. Every field is safe to print: no secret ever enters it."""

    run_id: str
    status: str  # delivered | already_delivered | unverified | failed | interrupted
    pipeline: str
    table: str
    warehouse: str
    rows_read: int
    rows_written: int
    rows_quarantined: int
    duplicates_skipped: int
    rows_loaded: int
    verified: bool
    batches: int
    final_batch_size: int
    resumed_from_batch: int | None
    peak_rss_mb: float
    duration_s: float
    hold_dir: str
    quarantine_dir: str | None
    message: str
    exit_code: int = ExitCode.DELIVERED
    stage_s: float = 0.0  # time spent moving HOLD₁ into HOLD₂
    load_s: float = 0.0  # time spent loading and verifying the warehouse
    first_batch_s: float | None = None  # fixed cost: process start to the first batch
    first_batch_rss_mb: float | None = None  # fixed memory: RSS just before the first batch
    guard_shrinks: int = 0  # times the memory guard made the next batch smaller
    guard_grows: int = 0  # times it let the batch grow back
    oom_retries: int = 0  # batches tried again at half size after running out of memory
    files_skipped: tuple[str, ...] = ()  # matched files delivered before and unchanged: not read again
    agent: dict | None = None  # an agent pipeline's calls over the run (AgentUsage) and estimated_cost

    def to_dict(self) -> dict:
        """The summary as JSON-ready values."""
        return asdict(self)

    def save(self, path) -> None:
        """Write the summary as JSON, atomically."""
        atomic_write_bytes(path, (json.dumps(self.to_dict(), indent=2) + "\n").encode())

    def render(self) -> str:
        """A short, readable block for the terminal."""
        verified = "yes" if self.verified else "NO"
        lines = [
            f"run {self.run_id}: {self.status}  ({self.pipeline} -> {self.warehouse} table {self.table})",
            f"  rows read          {self.rows_read:>12,}",
            f"  rows written       {self.rows_written:>12,}   (to HOLD₂)",
            f"  rows quarantined   {self.rows_quarantined:>12,}"
            + (f"   see {self.quarantine_dir}" if self.rows_quarantined and self.quarantine_dir else ""),
            f"  duplicates skipped {self.duplicates_skipped:>12,}",
            *(
                [f"  files skipped      {len(self.files_skipped):>12,}   (delivered before, unchanged)"]
                if self.files_skipped
                else []
            ),
            f"  rows loaded        {self.rows_loaded:>12,}   verified: {verified}",
            f"  batches {self.batches:,} (final size {self.final_batch_size:,})"
            + (f", resumed from batch {self.resumed_from_batch}" if self.resumed_from_batch is not None else "")
            + f", {self.duration_s:.1f}s, peak RSS {self.peak_rss_mb:,.0f} MB"
            + (
                f", memory guard: {self.guard_shrinks} shrink(s), {self.guard_grows} grow(s), "
                f"{self.oom_retries} out-of-memory retr(ies)"
                if self.guard_shrinks or self.oom_retries
                else ""
            ),
            *([agent_line(self.agent)] if self.agent else []),
            f"  HOLD₂ kept at {self.hold_dir}",
        ]
        if self.message:
            lines.append(f"  {self.message}")
        return "\n".join(lines)


def agent_line(usage: dict) -> str:
    """The agent's calls in one line: what was paid for, what was reused, what it cost."""
    cost = usage.get("estimated_cost")
    return (
        f"  agent: {usage['calls']:,} call(s) ({usage['retries']:,} retried, {usage['throttled']:,} throttled), "
        f"{usage['records_answered']:,} answered, {usage['records_rejected']:,} rejected, "
        f"{usage['reused']:,} reused, {usage['tokens']:,} tokens"
        + (f", estimated cost {cost:,.4f}" if cost is not None else "")
    )


def attach_summary(error: BaseException, summary: dict) -> None:
    """Let a failed run's summary travel with its error: a flow's return value when it fails."""
    error.run_summary = summary  # type: ignore[attr-defined]


def summary_of(error: BaseException) -> dict | None:
    """The summary a failed run attached to its error, if it got far enough to have one."""
    return getattr(error, "run_summary", None)
