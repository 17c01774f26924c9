"""Where bqhold writes: a directory or file an option names must be one it can create and write.

Checked before anything is staged, so a wrong path is one line naming the option (exit 2), never
a traceback, a "resume" that cannot help, or a run that stages for hours and then cannot load.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from bqhold.tasks.core.errors import BqholdError, ConfigError, DiskFull, disk_full_reason

_DIRECTORY_ADVICE = "pass a directory bqhold can write (it is created if missing)"
_WAREHOUSE_ADVICE = "name a DuckDB file in a directory bqhold can write"


def _first_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists: what stopped a directory from being created."""
    return next((candidate for candidate in (path, *path.parents) if candidate.exists()), path)


def _where(subject: str, path: Path) -> str:
    return subject if subject.endswith(f" {path}") else f"{subject}: {path}"


def _unwritable(exc: OSError, path: Path, subject: str, advice: str) -> BqholdError:
    reason = disk_full_reason(exc)
    if reason is not None:
        return DiskFull(reason, path)
    return ConfigError(f"{_where(subject, path)} is not writable ({exc.strerror or exc}); {advice}")


def writable_directory(path: Path, flag: str, given: str | None = None, advice: str = _DIRECTORY_ADVICE) -> Path:
    """`path`, created if missing, once it is known to be a directory bqhold can write.

    A ConfigError names `flag` (and what the user `given` with it, if not `path`) when the
    directory is a file, lies under a file, or refuses writes (a read-only mount, permissions);
    DiskFull when there is no room even to try.
    """
    subject = f"{flag} {given or path}"
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise ConfigError(f"{_where(subject, _first_existing(path))} is a file, not a directory; {advice}") from exc
    except OSError as exc:
        raise _unwritable(exc, path, subject, advice) from exc
    try:  # an unnamed file that vanishes on close: the cheapest real test of "can write here"
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise _unwritable(exc, path, subject, advice) from exc
    return path


def warehouse_file(path: Path) -> Path:
    """`path` as an embedded warehouse file: its directory writable, itself not a directory."""
    given = f"duckdb://{path}"
    writable_directory(path.parent, "--warehouse", given, _WAREHOUSE_ADVICE)
    if path.is_dir():
        raise ConfigError(
            f"--warehouse {given} is a directory; {_WAREHOUSE_ADVICE}, e.g. duckdb://{path}/warehouse.duckdb"
        )
    return path
