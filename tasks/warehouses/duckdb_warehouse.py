"""The embedded default warehouse: a DuckDB file, loaded from HOLD₂'s segment files."""

from __future__ import annotations

from pathlib import Path

import duckdb

from tasks.core.duckdb_types import DUCKDB_TYPES, column_definitions, identifier
from tasks.core.errors import ConfigError, ResourceError, StateError
from tasks.core.load_plan import LoadGroup
from tasks.core.schema import Schema


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def load_memory_mb(columns: int, base_mb: int, object_bytes: int = 0) -> int:
    """DuckDB's memory cap while loading a table of `columns` columns: its JSON reader keeps
    buffers per column and thread (measured: 500 columns need more than 192 MB, 10,000 ~700 MB),
    and, for rows over its default object size, buffers of twice the largest plus the row itself
    (measured on one thread: a 90 MB row loads under 400 MB)."""
    return base_mb + columns * 96 // 1024 + 3 * object_bytes // 2**20


class DuckDbWarehouse:
    """Loads a group in one transaction that first removes what an earlier attempt left."""

    # A group's rows sit in the load's transaction until COMMIT: keep it to a few batches.
    max_group_bytes = 256 * 2**20

    def __init__(self, path: Path, memory_limit_mb: int = 192) -> None:
        self.path, self.memory_limit_mb = path, memory_limit_mb
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise StateError(f"warehouse {path} cannot be opened: {str(exc).splitlines()[0]}") from exc
        self._configure(memory_limit_mb, 2)
        self._con.execute("SET preserve_insertion_order = false")  # lets a large load stream

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
        try:
            return self._load(table, schema, group, files)
        except duckdb.InvalidInputException as exc:
            if "maximum_object_size" not in str(exc):
                raise
        # A row over DuckDB's default JSON object size (16 MiB; bqhold stages rows up to
        # --max-record-bytes): again with room for the largest, which no file exceeds.
        return self._load(table, schema, group, files, max(f.stat().st_size for f in files) + 1)

    def _load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], object_bytes: int = 0) -> int:
        # Large rows load on one thread: each reading thread holds buffers twice the largest row.
        self._configure(load_memory_mb(len(schema), self.memory_limit_mb, object_bytes), 1 if object_bytes else 2)
        try:
            return self._load_group(table, schema, group, files, object_bytes)
        finally:
            self._configure(self.memory_limit_mb, 2)

    def _configure(self, memory_mb: int, threads: int) -> None:
        self._con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
        self._con.execute(f"SET threads = {threads}")

    def _load_group(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], object_bytes: int) -> int:
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
            object_size = f", maximum_object_size = {object_bytes}" if object_bytes else ""
            con.execute(
                f"INSERT INTO {identifier(table)} BY NAME SELECT * FROM read_json({sources}, "
                f"columns = {columns}, format = 'newline_delimited'{object_size})"
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
        """Close the database."""
        self._con.close()
