"""One run's agent: an event loop on its own thread (clients and models live across batches),
the call runner, the run's call log and usage. The batch path calls `answer(rows)` and gets the
rows back with the agent's columns, or the reason it rejected each one (docs/design.md,
invariant 11).
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from bqhold.tasks.core.agents.call_keys import call_keys
from bqhold.tasks.core.agents.call_log import CALL_KEY, FILE, OFFSET, REASON, CallLog, FileMirror, LogWriter
from bqhold.tasks.core.agents.calls import AgentFailed, CallRunner, Pending
from bqhold.tasks.core.agents.spec import Agent
from bqhold.tasks.core.agents.usage import AgentUsage
from bqhold.tasks.core.atomic import atomic_write_bytes
from bqhold.tasks.core.records import INTERNAL_COLUMNS, OFFSET_COLUMN, QUARANTINE_REASON, Position
from bqhold.tasks.core.stop import StopRequest
from bqhold.tasks.core.throttle import Throttle

T = TypeVar("T")
USAGE_SAVE_S = 1.0  # the usage file is rewritten at most this often while calls are answered


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_bytes())
    except (OSError, ValueError):
        return {}


def agent_dir(run_dir: Path) -> Path:
    """Where a run keeps its agent's call log and usage."""
    return run_dir / "agent"


class AgentSession:
    """The agent of one run, from its first call (`setup`) to `close` (`teardown`)."""

    def __init__(
        self, agent: Agent, run_dir: Path, stop: StopRequest, mirror: FileMirror | None = None, remote_run: str = ""
    ) -> None:
        """`mirror`: the durable HOLD₂ (`--hold-url`) whose `remote_run` (`runs/<run>/`) is `run_dir`."""
        self.agent, self.stop = agent, stop
        directory = agent_dir(run_dir)
        self.remote = f"{remote_run}agent/"
        self.mirror = mirror
        self.log = CallLog(directory, agent.outputs, mirror, self.remote)
        self.usage_path = directory / "usage.json"
        self.tuning_path = directory / "tuning.json"
        for path in (self.usage_path, self.tuning_path):  # a new machine: the totals and tuning so far
            if mirror is not None and not path.exists():
                mirror.fetch(self.remote + path.name, path)
        self.usage = AgentUsage.load(self.usage_path)
        agent.tuning.update(_read_json(self.tuning_path))
        self._usage_due = Throttle(USAGE_SAVE_S)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="bqhold-agent", daemon=True)
        self._thread.start()
        self._ready = False
        self._logged_up_to: tuple[int, int] | None = None  # the last record position the log has an answer for
        self.runner = self._run(self._runner())

    async def _runner(self) -> CallRunner:
        runner = CallRunner(self.agent, self.usage, stopping=lambda: self.stop.signum is not None)
        runner.on_flush = self._maybe_save_usage
        return runner

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _maybe_save_usage(self) -> None:
        if self._usage_due.ready():
            self.save_usage()

    def save_usage(self) -> None:
        """Write the run's usage totals now."""
        self.usage_path.parent.mkdir(parents=True, exist_ok=True)
        self.usage.save(self.usage_path)

    def answer(self, rows: pl.DataFrame, file_index: int, batch: int = 0) -> pl.DataFrame:
        """`rows` (batch `batch`'s records, deduplicated) with the agent's output columns, and
        `_quarantine_reason` set on those it rejected or could not be sent. Answers kept in the
        call log are used as they are; every other distinct input is sent once."""
        self.log.catch_up(batch)
        keys, pending, kept = self._requests(rows, file_index)
        tuned = dict(self.agent.tuning)
        answered = self._call(list(pending.values()), batch) if pending else kept.clear()
        self.save_usage()
        if self.agent.tuning != tuned:
            atomic_write_bytes(self.tuning_path, json.dumps(self.agent.tuning).encode())
        self._logged_up_to = _last_position(kept, answered)
        unanswered = pending.keys() - set(answered[CALL_KEY].to_list())
        if unanswered:  # the calls stopped early: only a stop signal does that
            where = f"with {len(unanswered):,} record(s) of the batch still to send to agent {self.agent.name}"
            self.stop.check(where)
            raise AgentFailed(f"{where}, and no stop was asked")
        return _joined(rows, keys, pl.concat([kept, answered]), self.agent)

    def _requests(
        self, rows: pl.DataFrame, file_index: int
    ) -> tuple[list[str | None], dict[str, Pending], pl.DataFrame]:
        """Each row's call key (None: nothing to send), the distinct inputs the call log has no
        answer for, and the answers it has."""
        agent = self.agent
        records = rows.drop([c for c in INTERNAL_COLUMNS if c in rows.columns])
        values = [agent.input_of(record) for record in records.iter_rows(named=True)]
        key_of = iter(call_keys(agent.name, agent.identity, [value for value in values if value is not None]))
        keys = [None if value is None else next(key_of) for value in values]
        kept = self.log.read()
        known = set(kept[CALL_KEY].to_list())
        offsets = rows[OFFSET_COLUMN].to_list() if OFFSET_COLUMN in rows.columns else list(range(rows.height))
        pending: dict[str, Pending] = {}
        for key, value, offset in zip(keys, values, offsets, strict=True):
            if key is None:
                continue
            if key in known:
                self.usage.reused += 1
            elif key not in pending:
                pending[key] = Pending(key, value, file_index, offset or 0)
        return keys, pending, kept

    def _call(self, pending: list[Pending], batch: int) -> pl.DataFrame:
        writer = self.log.writer(batch)
        try:
            return self._run(self._answer(pending, writer))
        finally:
            writer.close()

    async def _answer(self, pending: list[Pending], writer: LogWriter) -> pl.DataFrame:
        if not self._ready:
            await self.agent.setup()
            self._ready = True
        return await self.runner.answer(pending, writer)

    def settle(self, position: Position, next_batch: int) -> None:
        """After a batch is committed: its answers are in HOLD₂ now (see CallLog.settle). When
        every answer logged is of a record before `position` (the rule, unless a resumed batch
        was made smaller), the log is emptied without being read again. With a durable HOLD₂ the
        usage and tuning so far go there too."""
        logged_up_to, self._logged_up_to = self._logged_up_to, None
        if logged_up_to is not None and logged_up_to < (position.file_index, position.offset):
            self.log.clear()
        else:
            self.log.settle(position, next_batch)
        if self.mirror is not None:
            for path in (self.usage_path, self.tuning_path):
                if path.exists():
                    self.mirror.put(path, self.remote + path.name)

    def release(self) -> None:
        """Memory is critical: the agent gives back what it holds until its next call."""
        if self._ready:
            self._run(self.agent.release())
            self._ready = False

    def close(self) -> None:
        """Tear the agent down and stop the loop, whatever the run's outcome."""
        try:
            if self._ready:
                self._run(self.agent.teardown())
        finally:
            self.save_usage()
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)


def _last_position(*answers: pl.DataFrame) -> tuple[int, int] | None:
    """The furthest (file, offset) of the records the call log answers, None when it answers none."""
    positions = pl.concat([frame.select(FILE, OFFSET) for frame in answers])
    if positions.is_empty():
        return None
    last = positions.sort(FILE, OFFSET).row(-1)
    return int(last[0]), int(last[1])


def _joined(rows: pl.DataFrame, keys: list[str | None], answers: pl.DataFrame, agent: Agent) -> pl.DataFrame:
    """`rows` with each one's answer (outputs, or the reason it was rejected) by call key."""
    outputs = list(agent.outputs)
    answers = answers.unique(CALL_KEY, keep="first").select(CALL_KEY, REASON, *outputs)
    base = rows.drop([name for name in outputs if name in rows.columns])
    joined = base.with_columns(pl.Series(CALL_KEY, keys, dtype=pl.String)).join(
        answers, on=CALL_KEY, how="left", maintain_order="left"
    )
    reason = (
        pl.when(pl.col(CALL_KEY).is_null())
        .then(pl.lit(agent.missing_input()))
        .when(pl.col(REASON).is_not_null())
        .then(pl.format(f"agent {agent.name} rejected the record: {{}}", pl.col(REASON)))
    )
    return joined.with_columns(reason.alias(QUARANTINE_REASON)).drop(CALL_KEY, REASON)
