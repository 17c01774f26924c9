"""What a run's agent calls cost: calls, retries, throttles, rejected records, tokens, answers
reused; kept per run in `runs/<run>/agent/usage.json`, rewritten with every flush of answers,
so a resumed run (another process, a UI retry) adds to the totals instead of starting over."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from bqhold.tasks.core.atomic import atomic_write_bytes


@dataclass
class AgentUsage:
    """Totals of one run's calls. `calls` counts every request sent (retries and the halves of
    a split chunk included): what a service bills per request; `records_answered` counts the
    records it answered; `reused` the records answered from the call log instead of a call."""

    calls: int = 0
    retries: int = 0
    throttled: int = 0  # answers that said "slow down" (429)
    failures: int = 0  # calls that failed for a reason worth retrying (5xx, timeout, cut off)
    records_answered: int = 0
    records_rejected: int = 0
    reused: int = 0
    tokens: int = 0  # as the service reported them (0 when it reports none)
    call_seconds: float = 0.0  # time spent in calls, summed over concurrent calls

    def cost(self, per_million_tokens: float | None, per_call: float | None) -> float | None:
        """The estimated cost at the agent's declared prices, None when it declares none."""
        if per_million_tokens is None and per_call is None:
            return None
        return (per_million_tokens or 0) * self.tokens / 1e6 + (per_call or 0) * self.calls

    def snapshot(self) -> AgentUsage:
        """A copy of the totals now (they go on growing while calls are answered)."""
        return replace(self)

    def progress(self, before: AgentUsage, seconds: float) -> str:
        """One line on the calls since `before`, `seconds` ago: their rate, and the totals."""
        rate = (self.calls - before.calls) / seconds if seconds > 0 else 0.0
        return (
            f"{self.calls:,} call(s) ({rate:,.1f}/s lately), {self.retries:,} retried "
            f"({self.throttled:,} throttled, {self.failures:,} failed), {self.records_answered:,} record(s) answered, "
            f"{self.records_rejected:,} rejected, {self.reused:,} reused, {self.tokens:,} tokens"
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, json.dumps(self.as_dict()).encode())

    @classmethod
    def load(cls, path: Path) -> AgentUsage:
        """The totals saved at `path`, or zeros (no calls yet, or an unreadable file: counts only)."""
        try:
            saved = json.loads(path.read_bytes())
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{name: value for name, value in saved.items() if name in known})
