"""Every retry layer of bqhold, in one table, and their product (docs/design.md "Retry layers").

A request to Google can be tried again by four layers, each around the one before it:

| layer   | one attempt is                          | retried by      | tries | waits before a retry       |
|---------|-----------------------------------------|-----------------|-------|----------------------------|
| upload  | one request of an upload to BigQuery    | resumable-media | N + 1 | 1 s doubling to 64 s, +1 s |
| request | one call to BigQuery or Cloud Storage   | tenacity        | N + 1 | W doubling to 30 s, +W     |
| job     | one load job of a group (_a0, _a1, ...) | BigQueryDataset | 5     | none                       |
| task    | the Prefect task load-group/verify-run  | Prefect         | 3     | 5 s, then 30 s             |

N is `--max-retries`: it bounds the two layers that repeat one request; the job and task layers
repeat whole steps and keep small fixed counts. W is `RetryTiming.first_wait_s`; "+W" is a
random jitter of up to W. The upload layer's waits are google-resumable-media's own (the
client takes a retry count, not a schedule). A whole upload, like any call, is retried by the
request layer; Cloud Storage uploads have no upload layer (`retry=None`). Each try of a request
ends after `RetryTiming.request_timeout_s`. Only errors the classification table calls
transient are retried, at every layer (docs/design.md, invariant 7). The job layer's 5 count
per group and process, so task retries share them rather than multiply them: the product
below is the plain product, an upper bound.

Worst case, every try failing transiently at its timeout and every wait at its longest
(`worst_case()` computes it from this table): with N = 3 and the default timing one upload
request is tried 4 × 4 × 5 × 3 = 240 times over 15,185 s (4 h 13 min); a call outside an
upload 4 × 5 × 3 = 60 times.

Tests pass `sleep=waits.append` and assert the exact schedule without waiting; they make a
whole run's retries fast by replacing `TIMING` (monkeypatch), never through a flow parameter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from bqhold.tasks.core.errors import Category, classify


def is_transient(exc: BaseException) -> bool:
    """True for errors worth another attempt."""
    return classify(exc) is Category.TRANSIENT


@dataclass(frozen=True)
class RetryTiming:
    """How long the request layers wait: the first backoff wait, and one request's timeout."""

    first_wait_s: float = 1.0  # it doubles at each retry; the jitter added is up to as much again
    request_timeout_s: float = 60.0


TIMING = RetryTiming()  # read when a warehouse is opened; tests replace it to make retries fast


@dataclass(frozen=True)
class Backoff:
    """Waits that double from `first_s` up to `max_s`, each plus up to `jitter_s` at random."""

    first_s: float
    max_s: float
    jitter_s: float
    cap_includes_jitter: bool  # tenacity caps the wait with its jitter; google-resumable-media before it

    def longest(self, retries: int) -> tuple[float, ...]:
        """The longest each of `retries` waits can be."""
        if self.cap_includes_jitter:
            return tuple(min(self.first_s * 2**n + self.jitter_s, self.max_s) for n in range(retries))
        return tuple(min(self.first_s * 2**n, self.max_s) + self.jitter_s for n in range(retries))


@dataclass(frozen=True)
class Layer:
    """One retry layer: what one attempt is, what retries it, how often and after which waits."""

    name: str
    attempt: str
    retried_by: str
    fixed_retries: int | None = None  # None: as many as --max-retries
    backoff: Backoff | None = None  # else the fixed `delays_s` (none: retried at once)
    delays_s: tuple[float, ...] = ()

    def attempts(self, max_retries: int) -> int:
        """Tries under `--max-retries max_retries`, the first included."""
        return 1 + (max_retries if self.fixed_retries is None else self.fixed_retries)

    def longest_waits(self, max_retries: int) -> tuple[float, ...]:
        """The longest wait before each retry."""
        retries = self.attempts(max_retries) - 1
        if self.backoff is not None:
            return self.backoff.longest(retries)
        return (self.delays_s + (0.0,) * retries)[:retries]


REQUEST_MAX_WAIT_S = 30.0
UPLOAD = Layer(
    "upload",
    "one request of a resumable (or multipart) upload to BigQuery",
    "google-resumable-media, told --max-retries; its waits are its own (not settable through the client)",
    backoff=Backoff(first_s=1.0, max_s=64.0, jitter_s=1.0, cap_includes_jitter=False),
)
LOAD_JOB = Layer(
    "job",
    "one BigQuery load job of a group, under the next job id (_a1, _a2, ...)",
    "BigQueryDataset.load",
    fixed_retries=4,
)
PREFECT_TASK = Layer(
    "task",
    "the Prefect task load-group or verify-run",
    "Prefect (retry_transient_only)",
    fixed_retries=2,
    delays_s=(5.0, 30.0),
)


def request_layer(timing: RetryTiming) -> Layer:
    """The layer that retries one call to BigQuery or Cloud Storage (a whole upload included)."""
    backoff = Backoff(timing.first_wait_s, REQUEST_MAX_WAIT_S, jitter_s=timing.first_wait_s, cap_includes_jitter=True)
    return Layer("request", "one call to BigQuery or Cloud Storage", "tenacity (RetryPolicy)", backoff=backoff)


def retry_layers(timing: RetryTiming) -> tuple[Layer, ...]:
    """Every retry layer, innermost first."""
    return (UPLOAD, request_layer(timing), LOAD_JOB, PREFECT_TASK)


@dataclass(frozen=True)
class WorstCase:
    """The most tries one request can get, and the longest they can take."""

    attempts: int
    wall_s: float


def worst_case(max_retries: int, timing: RetryTiming = TIMING) -> WorstCase:
    """Each layer's tries repeat everything inside it: tries multiply, and each layer adds its waits
    (every try running to its timeout, every wait at its longest)."""
    attempts, wall_s = 1, timing.request_timeout_s
    for layer in retry_layers(timing):
        tries = layer.attempts(max_retries)
        attempts, wall_s = attempts * tries, tries * wall_s + sum(layer.longest_waits(max_retries))
    return WorstCase(attempts, wall_s)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry a transient failure."""

    attempts: int = 4  # total tries, the first included
    initial_s: float = 1.0
    max_wait_s: float = REQUEST_MAX_WAIT_S
    jitter_s: float = 1.0

    @classmethod
    def for_layer(cls, layer: Layer, max_retries: int) -> RetryPolicy:
        """The policy of a backoff layer under `--max-retries max_retries`."""
        assert layer.backoff is not None, f"layer {layer.name} has no backoff"
        backoff = layer.backoff
        return cls(layer.attempts(max_retries), backoff.first_s, backoff.max_s, backoff.jitter_s)

    @classmethod
    def from_max_retries(cls, max_retries: int, timing: RetryTiming = TIMING) -> RetryPolicy:
        """The request layer's policy for `--max-retries N` (N retries after the first try)."""
        return cls.for_layer(request_layer(timing), max_retries)

    def retrying(
        self,
        should_retry: Callable[[BaseException], bool] = is_transient,
        sleep: Callable[[float], None] = time.sleep,
        on_retry: Callable[[RetryCallState], None] | None = None,
    ) -> Retrying:
        """A tenacity Retrying for this policy; the last error is re-raised as is."""
        return Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential_jitter(multiplier=self.initial_s, max=self.max_wait_s, jitter=self.jitter_s),
            retry=retry_if_exception(should_retry),
            sleep=sleep,
            before_sleep=on_retry,
            reraise=True,
        )


@dataclass(frozen=True)
class RequestRetries:
    """What a warehouse's requests to Google need: the request and upload layers for one
    `--max-retries`, and the timing."""

    max_retries: int
    timing: RetryTiming = RetryTiming()

    @property
    def policy(self) -> RetryPolicy:
        """The request layer's policy."""
        return RetryPolicy.from_max_retries(self.max_retries, self.timing)

    @property
    def upload_retries(self) -> int:
        """Retries of one upload request, as google-resumable-media counts them."""
        return UPLOAD.attempts(self.max_retries) - 1

    @property
    def request_timeout_s(self) -> float:
        """How long one try of a request may take."""
        return self.timing.request_timeout_s
