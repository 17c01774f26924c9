"""The one classification table: what to do about an error, and the exit code it ends with."""

from __future__ import annotations

import errno
import signal

import pytest

from bqhold.tasks.core.errors import (
    Category,
    ConfigError,
    DataErrorRateExceeded,
    DiskFull,
    ExitCode,
    InputError,
    Interrupted,
    ResourceError,
    ResumeRefused,
    StateError,
    TransientError,
    VerificationFailed,
    classify,
    database_open_error,
    disk_full_as_error,
    exit_code_for,
    without_tracebacks,
)
from bqhold.tasks.core.stop import StopRequest


@pytest.mark.parametrize(
    ("exc", "category"),
    [
        (MemoryError(), Category.RESOURCE),
        (OSError(errno.ENOSPC, "No space left on device"), Category.RESOURCE),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), Category.RESOURCE),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), Category.RESOURCE),
        (RuntimeError('IO Error: Could not write file "hold.duckdb.wal": File too large'), Category.RESOURCE),
        (ConnectionResetError(errno.ECONNRESET, "reset"), Category.TRANSIENT),
        (ConnectionRefusedError(), Category.TRANSIENT),
        (BrokenPipeError(), Category.TRANSIENT),
        (TimeoutError(), Category.TRANSIENT),
        (OSError(errno.ETIMEDOUT, "timed out"), Category.TRANSIENT),
        (OSError(errno.ECONNRESET, "reset"), Category.TRANSIENT),
        (OSError(errno.EACCES, "Permission denied"), Category.PERMANENT),
        (FileNotFoundError(), Category.PERMANENT),
        (ValueError("bad"), Category.PERMANENT),
        (KeyError("x"), Category.PERMANENT),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else value.value,
)
def test_foreign_errors_are_classified(exc, category):
    assert classify(exc) is category


@pytest.mark.parametrize(
    ("exc", "category", "code"),
    [
        (InputError("x"), Category.PERMANENT, 2),
        (ConfigError("x"), Category.PERMANENT, 2),
        (ResumeRefused("x"), Category.PERMANENT, 2),
        (DataErrorRateExceeded("x"), Category.PERMANENT, 2),
        (TransientError("x"), Category.TRANSIENT, 1),
        (ResourceError("x"), Category.RESOURCE, 1),
        (StateError("x"), Category.PERMANENT, 1),
        (VerificationFailed("x"), Category.PERMANENT, 3),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, BaseException) else str(value),
)
def test_our_errors_carry_their_category_and_exit_code(exc, category, code):
    assert classify(exc) is category
    assert exit_code_for(exc) == code


def test_input_error_exits_with_unusable_input():
    assert exit_code_for(InputError("data.jsonl: input file not found")) == ExitCode.UNUSABLE_INPUT == 2


def test_unexpected_error_is_resumable():
    assert exit_code_for(RuntimeError("surprise")) == ExitCode.RESUMABLE == 1


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_ends_with_the_shells_exit_code_for_it(capfd, signum, code):
    request = StopRequest()
    request.handle(signum, None)

    with pytest.raises(Interrupted) as info:
        request.check("after batch 3")

    assert exit_code_for(info.value) == code
    assert classify(info.value) is Category.TRANSIENT
    assert str(info.value).startswith(f"stopped by {signal.Signals(signum).name} after batch 3;")
    assert "re-run the same command to resume" in str(info.value)
    assert "finishing the current batch" in capfd.readouterr().err


def test_message_is_the_one_line_text():
    assert str(InputError("a.jsonl: input is empty (0 bytes)")) == "a.jsonl: input is empty (0 bytes)"


def raised(exc: BaseException) -> BaseException:
    """`exc` after being raised and caught, so it carries a traceback."""
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_without_tracebacks_drops_the_traceback_of_the_error_and_its_causes():
    cause = raised(OSError(errno.ECONNRESET, "reset"))
    try:
        raise TransientError("network trouble") from cause
    except TransientError as caught:
        exc = caught
    assert exc.__traceback__ is not None and cause.__traceback__ is not None

    result = without_tracebacks(exc)

    assert result is exc
    assert exc.__traceback__ is None and cause.__traceback__ is None
    assert str(exc) == "network trouble" and exc.__cause__ is cause


def test_without_tracebacks_survives_a_cycle_of_causes():
    first, second = raised(ValueError("a")), raised(ValueError("b"))
    first.__cause__, second.__cause__ = second, first

    without_tracebacks(first)

    assert first.__traceback__ is None and second.__traceback__ is None


@pytest.mark.parametrize(
    ("exc", "reason", "where"),
    [
        (
            OSError(errno.ENOSPC, "No space left on device", "/hold/runs/r/segments/b.jsonl"),
            "No space left on device",
            "/hold/runs/r/segments/b.jsonl",
        ),
        (OSError(errno.EFBIG, "File too large"), "File too large", "/hold"),
        (
            RuntimeError('IO Error: Could not write "hold.duckdb.wal": No space left on device'),
            "No space left",
            "/hold",
        ),
    ],
)
def test_every_way_of_saying_the_disk_is_full_becomes_one_resumable_line(exc, reason, where):
    with pytest.raises(DiskFull) as info, disk_full_as_error("/hold"):
        raise exc

    assert str(info.value).startswith(f"HOLD₂ cannot be written ({reason}: {where});")
    assert "re-run" in str(info.value) and exit_code_for(info.value) == ExitCode.RESUMABLE


def test_other_errors_and_bqhold_errors_pass_through_unchanged():
    for exc in (OSError(errno.EACCES, "Permission denied"), ConfigError("File too large is in this message")):
        with pytest.raises(type(exc)) as info, disk_full_as_error("/hold"):
            raise exc
        assert info.value is exc


LOCKED = (
    'IO Error: Could not set lock on file "/h/hold.duckdb": Conflicting lock is held in /usr/bin/python3 '
    "(PID 4242). However, you would be able to open this database in read-only mode"
)


@pytest.mark.parametrize(
    ("detail", "kind", "code", "words"),
    [
        (LOCKED, StateError, 1, ["/h is in use by another bqhold run", "(held by PID 4242)"]),
        ('IO Error: Cannot open file "/h/hold.duckdb": Operation not permitted', ConfigError, 2, ["--hold-dir /h"]),
        ('IO Error: Cannot open file "/h/hold.duckdb.wal": Permission denied', ConfigError, 2, ["not writable"]),
        ('IO Error: Could not write file "/h/x": Read-only file system', ConfigError, 2, ["not writable"]),
        ('IO Error: The file "/h/hold.duckdb" exists, but it is not a valid DuckDB database file!', ConfigError, 2, []),
        ('TransactionContext Error: Failed to commit: "/h/hold.duckdb.wal": No space left', DiskFull, 1, []),
        ("IO Error: something nobody foresaw", StateError, 1, ["/h cannot be opened: IO Error: something"]),
    ],
    ids=["locked", "not-permitted", "permission-denied", "read-only-fs", "not-a-database", "disk-full", "other"],
)
def test_a_duckdb_file_that_cannot_be_opened_says_why(detail, kind, code, words):
    error = database_open_error(detail, "/h", "--hold-dir", "is in use by another bqhold run")

    assert type(error) is kind and error.exit_code == code
    assert "\n" not in str(error)
    for word in words:
        assert word in str(error)
    assert ("in use" in str(error)) == (detail is LOCKED), "only a lock conflict is about another process"
