"""The embedded default warehouse: a DuckDB file, loaded from HOLD₂'s segment files."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import duckdb

from tasks.core.duckdb_types import DUCKDB_TYPES, column_definitions, identifier
from tasks.core.errors import ConfigError, ResourceError
from tasks.core.load_plan import LoadGroup
from tasks.core.memory import PLENTIFUL, LoadAllowance
from tasks.core.paths import warehouse_file
from tasks.core.schema import Schema
from tasks.storage.duckdb_files import connect


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DuckDbWarehouse:
    """Loads a group in one transaction that first removes what an earlier attempt left.

    The file is opened, and its write lock taken, only when a load or a count first needs it,
    and released by `close`: analysts can read the warehouse while a long run stages.
    """

    # A group's rows sit in the load's transaction until COMMIT: keep it to a few batches.
    max_group_bytes = 256 * 2**20

    def __init__(self, path: Path, allowance: Callable[[], LoadAllowance] | None = None) -> None:
        """Check now that the file can be created (before anything is staged); `allowance` is
        asked for DuckDB's memory settings when the file is opened, just before the load."""
        self.path = warehouse_file(path)
        self._allowance = allowance or (lambda: PLENTIFUL)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self.memory_limit_mb: int | None = None  # DuckDB's, once opened

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            allowance = self._allowance()
            self.memory_limit_mb = allowance.memory_limit_mb
            self._connection = connect(
                self.path,
                flag="--warehouse",
                named=self.path,
                in_use="is in use by another process: close that connection, then re-run to resume",
                setup=(
                    f"SET memory_limit = '{allowance.memory_limit_mb}MB'",
                    f"SET threads = {allowance.threads}",
                    "SET preserve_insertion_order = false",  # lets a large load stream
                ),
            )
        return self._connection

    def describe(self) -> str:
        """The warehouse file."""
        return f"duckdb://{self.path}"

    def _ensure_table(self, table: str, schema: Schema) -> None:
        name = identifier(table)
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({column_definitions(schema)})")
        existing = {
            row[0]: row[1]
            for row in self._con.execute(
                "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
            ).fetchall()
        }
        for column, kind in schema.items():
            if column not in existing:
                self._con.execute(
                    f"ALTER TABLE {name} ADD COLUMN {identifier(column, 'column name')} {DUCKDB_TYPES[kind]}"
                )
            elif existing[column] != DUCKDB_TYPES[kind]:
                raise ConfigError(
                    f"warehouse table {table} has column {column} as {existing[column]}, "
                    f"HOLD₂ stages it as {kind.value}"
                )

    def load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], delivery: int = 0) -> int:
        """Replace whatever the warehouse holds for the group's batches with its segment files."""
        self._ensure_table(table, schema)
        columns = "{" + ", ".join(f"{_sql_string(c)}: {_sql_string(DUCKDB_TYPES[k])}" for c, k in schema.items()) + "}"
        sources = "[" + ", ".join(_sql_string(str(f)) for f in files) + "]"
        batches = list(group.batches)
        con = self._con
        con.execute("BEGIN TRANSACTION")
        try:
            con.execute(
                f"DELETE FROM {identifier(table)} WHERE _run_id = ? AND list_contains(?, _batch)",
                [group.run_id, batches],
            )
            con.execute(
                f"INSERT INTO {identifier(table)} BY NAME SELECT * FROM read_json({sources}, "
                f"columns = {columns}, format = 'newline_delimited')"
            )
            loaded = con.execute(
                f"SELECT count(*) FROM {identifier(table)} WHERE _run_id = ? AND list_contains(?, _batch)",
                [group.run_id, batches],
            ).fetchone()[0]
            con.execute("COMMIT")
        except BaseException as exc:
            con.execute("ROLLBACK")
            if isinstance(exc, duckdb.OutOfMemoryException):
                raise ResourceError(
                    f"the DuckDB warehouse ran out of its {self.memory_limit_mb} MB budget loading {group.load_id}; "
                    "re-run to resume"
                ) from exc
            raise
        return loaded

    def counts(self, table: str, run_id: str) -> dict[int, int]:
        """Rows per batch of the run in the warehouse table."""
        exists = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table]
        ).fetchone()[0]
        if not exists:
            return {}
        rows = self._con.execute(
            f"SELECT _batch, count(*) FROM {identifier(table)} WHERE _run_id = ? GROUP BY _batch", [run_id]
        ).fetchall()
        return {int(batch): int(count) for batch, count in rows}

    def remove(self, table: str, run_id: str, batches: list[int]) -> None:
        """Delete the rows of these batches of a run."""
        if self.counts(table, run_id):
            self._con.execute(
                f"DELETE FROM {identifier(table)} WHERE _run_id = ? AND list_contains(?, _batch)", [run_id, batches]
            )

    def close(self) -> None:
        """Close the database, if it was opened (idempotent)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
