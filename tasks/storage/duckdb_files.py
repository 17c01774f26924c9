"""Open a DuckDB file — HOLD₂'s, or the embedded warehouse — or say in one line why it cannot be."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import duckdb

from bqhold.tasks.core.errors import database_open_error


def connect(
    path: Path,
    *,
    flag: str,
    named: Path,
    in_use: str,
    setup: Sequence[str] = (),
    read_only: bool = False,
) -> duckdb.DuckDBPyConnection:
    """A connection to `path` with the `setup` statements run, or the error that says what to do.

    `named` is what the user gave with `flag` (a hold dir, a warehouse file); the setup runs under
    the same classification because DuckDB first writes there (a read-only directory or a full
    disk shows up then, not at connect).
    """
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.Error as exc:
        raise database_open_error(str(exc), named, flag, in_use) from exc
    try:
        for statement in setup:
            con.execute(statement)
    except duckdb.Error as exc:
        con.close()
        raise database_open_error(str(exc), named, flag, in_use) from exc
    return con
