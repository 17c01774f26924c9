"""Errors typed by what to do about them, and the one table that classifies foreign ones.

Every error bqhold raises on purpose derives from `BqholdError` and carries a one-line
message meant for the user (never a secret, never a traceback) and the exit code of the
local command (docs/design.md, Exit codes).
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bqhold.tasks.core.metrics import StageMetric


class Category(str, Enum):
    """What to do about an error (docs/design.md, invariant 7)."""

    TRANSIENT = "transient"  # retry with backoff, then fail resumably
    RESOURCE = "resource"  # shrink the batch / stop cleanly, resumable
    DATA = "data"  # one record: quarantine it and go on
    PERMANENT = "permanent"  # no retry: say what to fix


class ExitCode:
    """Exit codes of `python flows/run.py` (docs/design.md, Exit codes)."""

    DELIVERED = 0
    RESUMABLE = 1
    UNUSABLE_INPUT = 2
    UNVERIFIED = 3
    SIGINT = 130
    SIGTERM = 143


class BqholdError(Exception):
    """Base of every error raised on purpose; `str(err)` is the user's one-line message."""

    category: Category = Category.PERMANENT
    exit_code: int = ExitCode.RESUMABLE


class InputError(BqholdError):
    """The input or the options cannot be used as given (exit 2)."""

    exit_code = ExitCode.UNUSABLE_INPUT


class ResumeRefused(InputError):
    """An unfinished run cannot be resumed safely (input changed, state inconsistent)."""


class ConfigError(InputError):
    """A configuration problem the user must fix (pipeline, warehouse URL, table...)."""


class DataErrorRateExceeded(InputError):
    """Too many bad records: the input is probably not what the run expects."""


class TransientError(BqholdError):
    """A temporary failure (network, rate limit): retried, then resumable by re-running."""

    category = Category.TRANSIENT


class ResourceError(BqholdError):
    """Out of memory or disk: stopped cleanly, resumable by re-running."""

    category = Category.RESOURCE


class BatchOutOfMemory(ResourceError):
    """A batch did not fit in memory; the runner halves the batch and tries it again."""

    def __init__(self, message: str, timings: tuple[StageMetric, ...] = ()) -> None:
        super().__init__(message)
        self.timings = timings  # the stages measured before it ran out: kept with the run's metrics


class DiskFull(ResourceError):
    """HOLD₂ (or `what`, another file bqhold writes) cannot be written: no space left, a quota or
    a file-size limit."""

    def __init__(self, reason: str, where: object, what: str = "HOLD₂") -> None:
        super().__init__(
            f"{what} cannot be written ({reason}: {where}); free space or raise the file-size limit, "
            "then re-run to resume"
        )


class StateError(BqholdError):
    """HOLD₂ is in use or damaged in a way that needs attention (exit 1)."""


class HoldDamaged(StateError):
    """A HOLD₂ file is not what its ledger entry says (truncated, deleted, altered): re-running
    alone cannot fix it, so it does not promise a resume (exit 2)."""

    exit_code = ExitCode.UNUSABLE_INPUT


class OrchestratorUnavailable(BqholdError):
    """Prefect (the local command's temporary server, or PREFECT_API_URL's) cannot be used: nothing ran (exit 1)."""


class VerificationFailed(BqholdError):
    """The warehouse's counts differ from HOLD₂'s ledger: not delivered, HOLD₂ kept."""

    exit_code = ExitCode.UNVERIFIED


class Interrupted(BqholdError):
    """A stop signal arrived; the checkpoint is written and the run can resume."""

    category = Category.TRANSIENT

    def __init__(self, message: str, exit_code: int) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class WarehouseRejected(ConfigError):
    """The warehouse refused the load or the query for a reason retrying cannot fix."""


class WarehouseNotFound(WarehouseRejected):
    """What a request named does not exist (404): a table, a job, a bucket or an object."""


class WarehouseConflict(WarehouseRejected):
    """What a request would create already exists (409): e.g. a job id that an earlier try used."""


class WarehouseUnavailable(TransientError):
    """The warehouse did not answer usefully after the allowed retries."""


class LoadJobStuck(BqholdError):
    """A load job still not done after its timeout and a cancel. Not retried here (that wait was
    the bound); re-running waits for the same job again, so no second job ever loads the group."""


# The one lookup table of warehouse error reasons (BigQuery's `errors[].reason`), then of
# HTTP statuses. A reason wins over its status: 403 rateLimitExceeded is worth a retry.
WAREHOUSE_REASONS: dict[str, Category] = {
    "rateLimitExceeded": Category.TRANSIENT,
    "backendError": Category.TRANSIENT,
    "internalError": Category.TRANSIENT,
    "jobBackendError": Category.TRANSIENT,
    "jobInternalError": Category.TRANSIENT,
    "quotaExceeded": Category.TRANSIENT,
    "timeout": Category.TRANSIENT,
    "stopped": Category.TRANSIENT,
    "invalid": Category.PERMANENT,
    "invalidQuery": Category.PERMANENT,
    "notFound": Category.PERMANENT,
    "accessDenied": Category.PERMANENT,
    "billingNotEnabled": Category.PERMANENT,
    "resourceInUse": Category.TRANSIENT,
    "responseTooLarge": Category.PERMANENT,
}
HTTP_STATUSES: dict[int, Category] = {
    408: Category.TRANSIENT,
    429: Category.TRANSIENT,
    500: Category.TRANSIENT,
    502: Category.TRANSIENT,
    503: Category.TRANSIENT,
    504: Category.TRANSIENT,
    400: Category.PERMANENT,
    401: Category.PERMANENT,
    403: Category.PERMANENT,
    404: Category.PERMANENT,
}


def classify_response(status: int | None, reason: str | None) -> Category:
    """The category of a warehouse error from its reason and HTTP status (unknown: permanent)."""
    if reason in WAREHOUSE_REASONS:
        return WAREHOUSE_REASONS[reason]
    return HTTP_STATUSES.get(status or 0, Category.PERMANENT)


_TRANSIENT_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EPIPE})
_DISK_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
# DuckDB reports the same conditions as text in its IO errors, without an errno.
_DISK_FULL_MESSAGES = ("No space left", "File too large", "Disk quota exceeded")


def _disk_full_text(text: str) -> str | None:
    return next((message for message in _DISK_FULL_MESSAGES if message in text), None)


def disk_full_reason(exc: BaseException) -> str | None:
    """Why `exc` says the disk (or a quota, or a file-size limit) is full; None if it does not."""
    if isinstance(exc, BqholdError):
        return None
    if isinstance(exc, OSError) and exc.errno in _DISK_FULL_ERRNOS:
        return exc.strerror or str(exc)
    return _disk_full_text(str(exc))


# How DuckDB says why it cannot open (or first write) a database file: it gives text, no errno.
_LOCK_CONFLICT = "Could not set lock"
_NOT_PERMITTED = ("Permission denied", "Operation not permitted", "Read-only file system")
_NOT_A_DATABASE = "not a valid DuckDB database file"


def database_open_error(detail: str, named: object, flag: str, in_use: str) -> BqholdError:
    """The one-line error for a DuckDB file that cannot be opened, from DuckDB's message.

    `named` is the path as the user gave it with `flag`; `in_use` completes "`named` ..." when
    another process holds the file's lock — the only case that is about someone else.
    """
    first = (detail.strip().splitlines() or ["unknown error"])[0]
    if _LOCK_CONFLICT in detail:
        holder = re.search(r"PID \d+", detail)
        return StateError(f"{named} {in_use} ({f'held by {holder[0]}' if holder else first})")
    reason = _disk_full_text(detail)
    if reason is not None:
        return DiskFull(reason, named, "HOLD₂" if flag == "--hold-dir" else "the DuckDB warehouse")
    if any(message in detail for message in _NOT_PERMITTED):
        return ConfigError(f"{flag} {named} is not writable ({first}); pass a location bqhold can write")
    if _NOT_A_DATABASE in detail:
        return ConfigError(f"{flag} {named}: not a DuckDB database ({first}); pass another path or move it away")
    return StateError(f"{named} cannot be opened: {first}")


@contextmanager
def disk_full_as_error(where: object, what: str = "HOLD₂") -> Iterator[None]:
    """Turn any way of saying the disk is full into DiskFull (one line, resumable) about `what` at `where`."""
    try:
        yield
    except Exception as exc:
        reason = disk_full_reason(exc)
        if reason is None:
            raise
        raise DiskFull(reason, getattr(exc, "filename", None) or where, what) from exc


def classify(exc: BaseException) -> Category:
    """The category of any exception: ours carry it; foreign ones are looked up here."""
    if isinstance(exc, BqholdError):
        return exc.category
    if isinstance(exc, MemoryError) or (isinstance(exc, OSError) and exc.errno == errno.ENOMEM):
        return Category.RESOURCE
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return Category.TRANSIENT
    if disk_full_reason(exc) is not None:
        return Category.RESOURCE
    if isinstance(exc, OSError) and exc.errno in _TRANSIENT_ERRNOS:
        return Category.TRANSIENT
    return Category.PERMANENT


def exit_code_for(exc: BaseException) -> int:
    """The local command's exit code for an exception that ended a run."""
    if isinstance(exc, BqholdError):
        return exc.exit_code
    # An unexpected error leaves the last checkpoint in place: re-running resumes.
    return ExitCode.RESUMABLE


def without_tracebacks(exc: BaseException) -> BaseException:
    """`exc` with its traceback and those of its causes dropped, freeing the frames they pin."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        current.__traceback__ = None
        current = current.__cause__ or current.__context__
    return exc
