"""The embedded default warehouse: a DuckDB file, loaded from HOLD₂'s segment files."""

from __future__ import annotations

import logging
from pathlib import Path

import duckdb

from tasks.core.duckdb_types import DUCKDB_TYPES, column_definitions, column_type_of, identifier, widen_column
from tasks.core.errors import ConfigError, ResourceError, StateError
from tasks.core.load_plan import LoadGroup
from tasks.core.schema import ColumnType, Schema
from tasks.core.staging import ROW_HASH, RUN_COLUMNS
from tasks.core.verify import Fingerprint

logger = logging.getLogger("bqhold.duckdb_warehouse")


def _sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class DuckDbWarehouse:
    """Loads a group in one transaction that first removes what an earlier attempt left."""

    # A group's rows sit in the load's transaction until COMMIT: keep it to a few batches.
    max_group_bytes = 256 * 2**20

    def __init__(self, path: Path, memory_limit_mb: int = 192, text_columns: frozenset[str] = frozenset()) -> None:
        self.path, self.memory_limit_mb = path, memory_limit_mb
        self.text_columns = text_columns  # may widen to VARCHAR here: the user asked (--string-columns)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(path))
        except duckdb.Error as exc:
            raise StateError(f"warehouse {path} cannot be opened: {str(exc).splitlines()[0]}") from exc
        self._con.execute(f"SET memory_limit = '{int(memory_limit_mb)}MB'")
        self._con.execute("SET threads = 2")
        self._con.execute("SET preserve_insertion_order = false")  # lets a large load stream

    def describe(self) -> str:
        """The warehouse file."""
        return f"duckdb://{self.path}"

    def _columns(self, table: str) -> dict[str, str]:
        """The table's columns and their types (empty: no such table)."""
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
        return dict(rows)

    def _ensure_table(self, table: str, schema: Schema) -> None:
        name = identifier(table)
        self._con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({column_definitions(schema)})")
        existing = {column: column_type_of(kind) for column, kind in self._columns(table).items()}
        for column, kind in schema.items():
            if column not in existing:
                self._con.execute(
                    f"ALTER TABLE {name} ADD COLUMN {identifier(column, 'column name')} {DUCKDB_TYPES[kind]}"
                )
            elif existing[column] is not kind:
                self._widen(table, column, existing[column], kind)

    def _widen(self, table: str, column: str, old: ColumnType, new: ColumnType) -> None:
        """Follow HOLD₂'s widening: INT64 -> FLOAT64 always, to STRING only for --string-columns."""
        if new is ColumnType.STRING and column not in self.text_columns:
            raise ConfigError(
                f"warehouse table {table} has column {column} as {old.value}, HOLD₂ stages it as STRING; "
                f"the main command with --string-columns {column} widens it there too"
            )
        widen_column(self._con, identifier(table), f"warehouse table {table}", column, old, new)
        logger.warning("column %r of warehouse table %s widened from %s to %s", column, table, old.value, new.value)

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

    def fingerprints(self, table: str, run_id: str) -> dict[int | None, Fingerprint]:
        """Rows and row-hash sum per batch of the run in the warehouse table (None: rows without a batch)."""
        columns = self._columns(table)
        if not columns.keys() >= RUN_COLUMNS:
            return {}  # no table, or one bqhold has not loaded yet (it adds its columns with the first load)
        total = f"sum({ROW_HASH})" if ROW_HASH in columns else "NULL"  # a table from before row hashes
        rows = self._con.execute(
            f"SELECT _batch, count(*), {total} FROM {identifier(table)} WHERE _run_id = ? GROUP BY _batch", [run_id]
        ).fetchall()
        return {
            None if batch is None else int(batch): Fingerprint(int(count), None if hashed is None else int(hashed))
            for batch, count, hashed in rows
        }

    def remove(self, table: str, run_id: str, keep: list[int]) -> None:
        """Delete the run's rows outside the batches in `keep` (rows without a batch too)."""
        if self._columns(table).keys() >= RUN_COLUMNS:
            self._con.execute(
                f"DELETE FROM {identifier(table)} WHERE _run_id = ? "
                "AND (_batch IS NULL OR NOT list_contains(?::BIGINT[], _batch))",
                [run_id, keep],
            )

    def close(self) -> None:
        """Close the database."""
        self._con.close()
