"""DuckDB files — HOLD₂'s, or the embedded warehouse: open one or say in one line why it cannot be, and
run a transaction on one."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One DuckDB transaction: committed when the block ends, rolled back if it raises (unless a
    failed COMMIT has already ended it: then its own error is the one that counts)."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:
            pass
        raise
