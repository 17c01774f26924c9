"""What an agent is: the service (or model) a pipeline calls per record or per chunk of records,
its declared limits, and the three ways a call can fail that the runner treats differently.

A pipeline author subclasses `Agent` (or wraps a function with `FunctionAgent`): `call` answers
a chunk of inputs with one output per input, in order; `identity` names what decides an answer
besides the input (model, prompt, parameters), so a changed prompt is a new call, never a stale
answer. The runner (tasks/core/agents/calls.py) does the rest: concurrency, pacing, retries,
splitting a rejected chunk, and keeping every answer durable as it arrives.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.errors import Category, ConfigError


@dataclass(frozen=True)
class AgentLimits:
    """How hard the runner may use the service. None: no limit of that kind.

    `concurrency` is the most calls in flight; it halves on each throttling answer (429) and
    grows back by one per round of successful calls (additive increase, multiplicative decrease).
    The rates are never exceeded over any window of one second or one minute (tokens as
    `Agent.estimate_tokens` counts them before the call). `timeout_s` bounds one call; `retries`
    counts the retries of one chunk after a throttled, unavailable or timed-out call.
    """

    concurrency: int = 8
    requests_per_second: float | None = None
    requests_per_minute: float | None = None
    tokens_per_minute: float | None = None
    timeout_s: float = 60.0
    retries: int = 5
    chunk_size: int = 1  # records per call
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.concurrency < 1 or self.chunk_size < 1 or self.retries < 0 or self.timeout_s <= 0:
            raise ConfigError(f"agent limits must be positive: {self}")


@dataclass(frozen=True)
class Answer:
    """What one call returned: one output per input, in the inputs' order (each a mapping of the
    agent's output columns), and the tokens the service says it counted, when it says."""

    outputs: Sequence[Mapping[str, Any]]
    tokens: int | None = None


class CallFailed(Exception):
    """Base of the failures an agent's `call` raises to tell the runner what happened."""

    category = Category.PERMANENT

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RetryLater(CallFailed):
    """Throttled (429), unavailable (5xx), timed out or cut off: retried after a backoff of at
    least `retry_after` seconds when the service named one. `throttled` marks a rate-limit
    answer, which also halves the concurrency."""

    category = Category.TRANSIENT

    def __init__(self, reason: str, retry_after: float | None = None, throttled: bool = False) -> None:
        super().__init__(reason)
        self.retry_after, self.throttled = retry_after, throttled


class Rejected(CallFailed):
    """The service refused the inputs (400, a content policy, too long). A chunk is split until
    the refused record is found; that record is quarantined with `reason`, and the run goes on."""

    category = Category.DATA


class AccessRefused(CallFailed):
    """The service refused the credentials (401, 403) or the request's target (404): no call
    can succeed, so the run stops at once (the answers already kept stay)."""


@dataclass
class Agent:
    """Base of an agent: override `call`, and `setup`/`release`/`teardown` if it holds a client or a model.

    - `name`: what the agent is, in messages and in every call key.
    - `identity`: model, prompt, parameters: anything that changes an answer for the same input.
    - `outputs`: the columns the agent adds to each record, with their staged types.
    - `limits`: see AgentLimits.
    - `price_per_million_tokens`, `price_per_call`: for the estimated cost in the summary.
    """

    name: str
    outputs: Schema = field(default_factory=dict)
    identity: Mapping[str, Any] = field(default_factory=dict)
    limits: AgentLimits = field(default_factory=AgentLimits)
    price_per_million_tokens: float | None = None
    price_per_call: float | None = None
    # What the agent learnt that a resumed run should start from (a sub-batch size that fits in
    # memory); the session keeps it in the run's `agent/tuning.json` after each batch.
    tuning: dict[str, Any] = field(default_factory=dict)

    def input_of(self, record: Mapping[str, Any]) -> Any:
        """The part of a record that is sent (and hashed into its call key); None: the record
        cannot be sent, and `missing_input` says why it is quarantined."""
        return dict(record)

    def missing_input(self) -> str:
        """The quarantine reason of a record whose `input_of` is None."""
        return f"the record has nothing for agent {self.name} to read"

    def estimate_tokens(self, value: Any) -> int:
        """Tokens one input will cost, known before the call (for --agent-tpm): ~4 characters a token."""
        return max(1, len(str(value)) // 4)

    async def call(self, inputs: Sequence[Any]) -> Answer:
        """Answer a chunk of inputs (at most `limits.chunk_size`), or raise a CallFailed."""
        raise NotImplementedError

    async def setup(self) -> None:
        """Before the first call of a run: open clients, load models."""

    async def release(self) -> None:
        """When memory is critical, between batches: give back what `setup` holds (`setup` is
        called again before the next call)."""

    async def teardown(self) -> None:
        """At the end of the run, whatever its outcome."""


@dataclass
class FunctionAgent(Agent):
    """An agent from one function over a chunk of inputs, `async` or not, returning one output
    mapping per input (or an `Answer`). A sync function runs in a worker thread."""

    function: Callable[[Sequence[Any]], Awaitable[Any] | Any] | None = None

    async def call(self, inputs: Sequence[Any]) -> Answer:
        if self.function is None:
            raise ConfigError(f"agent {self.name} has no function")
        if inspect.iscoroutinefunction(self.function):
            result = await self.function(inputs)
        else:
            result = await asyncio.to_thread(self.function, inputs)
            if inspect.isawaitable(result):  # a plain function that hands back a coroutine
                result = await result
        return result if isinstance(result, Answer) else Answer(outputs=list(result))
