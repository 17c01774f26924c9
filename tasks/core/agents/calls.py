"""Calling an agent for a batch's records: chunks in flight up to the adaptive limit, paced, each
answer made durable before it counts, failures handled by category (docs/design.md, invariant 11).

- answered: the outputs are appended to the call log by one writer task while the calls go on
  (group commit: one fsync for all the answers that arrived meanwhile). A worker starts a call only
  once the answer before its last one is written, so a kill loses at most two calls per worker:
  the one in flight, and the last one answered if it is not written yet;
- `RetryLater` (429, 5xx, a timeout): tried again after a backoff with jitter, never sooner than
  the service's Retry-After, during which no call starts; a 429 halves the concurrency;
  `--agent-retries` failures of one chunk stop the run, resumably;
- `Rejected` (400): a chunk is split in two until the refused record is alone; it is kept in the
  log as rejected (with the reason) and quarantined;
- `AccessRefused` (401, 403, 404): the run stops at once, with one line.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import polars as pl

from bqhold.tasks.core import faults
from bqhold.tasks.core.agents.call_log import CALL_KEY, FILE, OFFSET, REASON, LogWriter
from bqhold.tasks.core.agents.pacing import AdaptiveLimit, Pacer
from bqhold.tasks.core.agents.spec import AccessRefused, Agent, Answer, CallFailed, Rejected, RetryLater
from bqhold.tasks.core.agents.usage import AgentUsage
from bqhold.tasks.core.errors import Category, ConfigError, TransientError, classify

_BACKOFF_BASE_S = 0.5


class AgentRefused(ConfigError):
    """The service refused bqhold's credentials or request target: no call can succeed (exit 2)."""


class AgentUnavailable(TransientError):
    """A chunk's calls kept failing after the allowed retries: stopped, resumable (exit 1)."""


class AgentFailed(TransientError):
    """The agent's own code raised an error bqhold does not know (a bug in the pipeline?): exit 1."""


@dataclass(frozen=True)
class Pending:
    """One input to send: its call key, the value sent, and where its first record is in HOLD₁."""

    key: str
    value: Any
    file_index: int
    offset: int


def backoff_s(attempt: int, retry_after: float | None, ceiling: float) -> float:
    """The wait before retry `attempt` (1, 2, ...): exponential with jitter, at least Retry-After."""
    exponential = min(ceiling, _BACKOFF_BASE_S * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)
    return max(exponential, retry_after or 0.0)


class _Work:
    """The chunks of one batch still to answer."""

    def __init__(self, chunks: list[list[Pending]]) -> None:
        self.queue: asyncio.Queue[tuple[list[Pending], int] | None] = asyncio.Queue()
        for chunk in chunks:
            self.queue.put_nowait((chunk, 0))
        self.outstanding = len(chunks)

    def finished_one(self, workers: int) -> None:
        self.outstanding -= 1
        if self.outstanding == 0:
            self.end(workers)

    def end(self, workers: int) -> None:
        """Wake every worker waiting for a chunk, to leave."""
        for _ in range(workers):
            self.queue.put_nowait(None)


class CallRunner:
    """Calls one agent for a run: pacing and concurrency carry over from batch to batch."""

    def __init__(
        self,
        agent: Agent,
        usage: AgentUsage,
        stopping: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        limits = agent.limits
        self.agent, self.usage, self.stopping, self.clock = agent, usage, stopping, clock
        self.pacer = Pacer.for_limits(limits.requests_per_second, limits.requests_per_minute, limits.tokens_per_minute)
        self.limit = AdaptiveLimit(limits.concurrency)
        self.on_flush: Callable[[], None] = lambda: None
        self._flush_turn = asyncio.Lock()
        self._unflushed: list[tuple[Pending, str | None, dict[str, Any]]] = []
        self._writer: LogWriter | None = None
        self._flushed = _Frames()
        self._group: asyncio.TaskGroup | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._writes = 0  # of this process, for fault injection
        self._answers = 0  # answers queued for the log so far (a chunk's, or a refused record's)
        self._written = 0  # how many of them are on disk
        self._write_done = asyncio.Condition()

    async def answer(self, pending: Sequence[Pending], writer: LogWriter) -> pl.DataFrame:
        """Answer every pending input (or stop: see `stopping`); return the log rows written."""
        self._writer, self._flushed = writer, _Frames()
        size = self.agent.limits.chunk_size
        work = _Work([list(pending[i : i + size]) for i in range(0, len(pending), size)])
        workers = min(self.limit.ceiling, work.outstanding)
        if workers:
            try:
                async with asyncio.TaskGroup() as self._group:
                    for _ in range(workers):
                        self._group.create_task(self._worker(work, workers))
            except BaseExceptionGroup as failed:
                await self._flush()  # the answers that arrived before the failure are kept
                raise _first(failed) from None
            finally:
                self._group = None
        await self._flush()
        return self._flushed.frame(self._writer.schema)

    async def _worker(self, work: _Work, workers: int) -> None:
        before_last = last = 0  # this worker's last two answers (by number)
        while True:
            item = await work.queue.get()
            if item is None or self.stopping():  # a stop: no new call, the ones in flight finish
                work.end(workers)
                return
            await self._until_written(before_last)
            chunk, attempt = item
            answer = await self._call(work, workers, chunk, attempt)
            if answer:
                before_last, last = last, answer

    async def _until_written(self, answer: int) -> None:
        """Wait until answer number `answer` (and every one before it) is on disk."""
        async with self._write_done:
            await self._write_done.wait_for(lambda: self._written >= answer)

    async def _call(self, work: _Work, workers: int, chunk: list[Pending], attempt: int) -> int:
        """One call for `chunk`, and what follows from its outcome; the number of the answer it
        queued for the log, 0 if none."""
        before = self._answers
        failure = await self._send(chunk)
        if failure is None:
            work.finished_one(workers)
        elif isinstance(failure, RetryLater):
            await self._retry_later(work, chunk, attempt + 1, failure)
        elif isinstance(failure, Rejected):
            self._split(work, workers, chunk, failure)
        elif isinstance(failure, AccessRefused):
            raise AgentRefused(f"{self.agent.name}: {failure.reason}")
        else:
            raise AgentFailed(f"{self.agent.name}: {failure.reason}")
        return self._answers if self._answers > before else 0

    async def _send(self, chunk: list[Pending]) -> CallFailed | None:
        """One call; its answer is queued for the log. Returns how it failed, if it did."""
        agent, values = self.agent, [item.value for item in chunk]
        tokens = sum(agent.estimate_tokens(value) for value in values)
        epoch = await self.limit.acquire()
        failure: CallFailed | None = None
        started = self.clock()
        try:
            await self.pacer.admit(tokens)
            started = self.clock()
            self.usage.calls += 1
            async with asyncio.timeout(agent.limits.timeout_s):
                answer = await agent.call(values)
        except TimeoutError:
            failure = RetryLater(f"no answer within {agent.limits.timeout_s:g} s (--agent-timeout-s)")
        except CallFailed as exc:
            failure = exc
        except Exception as exc:
            if classify(exc) is Category.RESOURCE:
                raise
            if classify(exc) is not Category.TRANSIENT:
                raise AgentFailed(f"agent {agent.name} raised {type(exc).__name__}: {exc}") from exc
            failure = RetryLater(f"{type(exc).__name__}: {exc}")
        finally:
            self.usage.call_seconds += self.clock() - started
            throttled = isinstance(failure, RetryLater) and failure.throttled
            await self.limit.release(epoch, throttled)
        if failure is None:
            self._keep_answer(chunk, answer)
        return failure

    def _keep_answer(self, chunk: list[Pending], answer: Answer) -> None:
        outputs = list(answer.outputs)
        if len(outputs) != len(chunk):
            raise AgentFailed(
                f"agent {self.agent.name} answered {len(outputs)} output(s) for {len(chunk)} input(s); "
                "it must answer one per input, in order"
            )
        self.usage.tokens += answer.tokens or 0
        self.usage.records_answered += len(chunk)
        self._queue([(item, None, dict(output)) for item, output in zip(chunk, outputs, strict=True)])

    def _queue(self, rows: list[tuple[Pending, str | None, dict[str, Any]]]) -> None:
        """Queue one answer's rows for the log and have the writer task write them."""
        self._unflushed.extend(rows)
        self._answers += 1
        self._write_soon()

    def _write_soon(self) -> None:
        """Have the writer task write what arrived, starting it unless it runs (then it goes on)."""
        if self._group is not None and (self._flusher is None or self._flusher.done()):
            self._flusher = self._group.create_task(self._flush())

    async def _flush(self) -> None:
        """Write every answer that arrived and is not on disk yet, one fsync per write, until none is left."""
        async with self._flush_turn:
            while self._unflushed and self._writer is not None:
                rows, self._unflushed, answers = self._unflushed, [], self._answers
                frame = _log_rows(rows, self._writer.schema)
                await asyncio.to_thread(self._writer.append, frame)
                self._flushed.add(frame)
                self._writes += 1
                faults.reached("answers_kept", self._writes)
                async with self._write_done:
                    self._written = answers
                    self._write_done.notify_all()
                self.on_flush()

    async def _retry_later(self, work: _Work, chunk: list[Pending], attempt: int, failure: RetryLater) -> None:
        usage, limits = self.usage, self.agent.limits
        usage.throttled += failure.throttled
        usage.failures += not failure.throttled
        if attempt > limits.retries:
            raise AgentUnavailable(
                f"{self.agent.name}: a call for {len(chunk)} record(s) failed {attempt} time(s), last: "
                f"{failure.reason}. Re-run to resume (the answers received are kept), or allow more"
                " with --agent-retries"
            )
        usage.retries += 1
        if failure.retry_after:
            self.pacer.pause(failure.retry_after)
        await asyncio.sleep(backoff_s(attempt, failure.retry_after, limits.max_backoff_s))
        work.queue.put_nowait((chunk, attempt))

    def _split(self, work: _Work, workers: int, chunk: list[Pending], failure: Rejected) -> None:
        if len(chunk) == 1:
            self.usage.records_rejected += 1
            self._queue([(chunk[0], failure.reason, {})])
            work.finished_one(workers)
            return
        half = len(chunk) // 2
        work.outstanding += 1  # one chunk becomes two
        work.queue.put_nowait((chunk[:half], 0))
        work.queue.put_nowait((chunk[half:], 0))


class _Frames:
    """The frames written, merged as they pile up (two of about the same height become one, as
    in a binary counter): thousands of small writes end as a few frames, each row copied a few times."""

    def __init__(self) -> None:
        self.parts: list[pl.DataFrame] = []

    def add(self, frame: pl.DataFrame) -> None:
        self.parts.append(frame)
        while len(self.parts) > 1 and self.parts[-2].height <= 2 * self.parts[-1].height:
            last = self.parts.pop()
            self.parts[-1] = pl.concat([self.parts[-1], last], rechunk=True)

    def frame(self, schema: pl.Schema) -> pl.DataFrame:
        return pl.concat(self.parts, rechunk=True) if self.parts else pl.DataFrame(schema=schema)


def _first(group: BaseExceptionGroup) -> BaseException:
    """The first error of a task group, unwrapped from nested groups."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _log_rows(rows: list[tuple[Pending, str | None, dict[str, Any]]], schema: pl.Schema) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {name: [] for name in schema}
    for item, reason, outputs in rows:
        columns[CALL_KEY].append(item.key)
        columns[FILE].append(item.file_index)
        columns[OFFSET].append(item.offset)
        columns[REASON].append(reason)
        for name in schema:
            if name not in (CALL_KEY, FILE, OFFSET, REASON):
                columns[name].append(outputs.get(name))
    return pl.DataFrame(columns, schema=schema)
