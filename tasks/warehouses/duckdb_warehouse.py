"""The embedded default warehouse: a DuckDB file, loaded from HOLD₂'s segment files."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import duckdb

from bqhold.tasks.core.column_types import ColumnType, FieldType, Schema
from bqhold.tasks.core.duckdb_types import (
    column_definitions,
    column_type_of,
    duckdb_type,
    identifier,
    text_literal,
    widen_column,
)
from bqhold.tasks.core.errors import ConfigError, ResourceError, disk_full_as_error
from bqhold.tasks.core.load_plan import LoadGroup
from bqhold.tasks.core.memory import PARQUET_LOAD_CEILING_MB, PLENTIFUL, LoadAllowance
from bqhold.tasks.core.paths import warehouse_file
from bqhold.tasks.core.segment_files import is_parquet
from bqhold.tasks.core.segment_rows import rows_sql
from bqhold.tasks.core.staging import ROW_HASH, RUN_COLUMNS
from bqhold.tasks.core.table_options import TableLayout, check_layout
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.core.write_modes import WriteMode
from bqhold.tasks.storage.duckdb_files import connect, transaction

logger = logging.getLogger("bqhold.duckdb_warehouse")


def load_memory_mb(columns: int, base_mb: int, object_bytes: int = 0) -> int:
    """DuckDB's memory cap while loading a table of `columns` columns: its JSON reader keeps
    buffers per column and thread (measured: 500 columns need more than 192 MB, 10,000 ~700 MB),
    and, for rows over its default object size, buffers of twice the largest plus the row itself
    (measured on one thread: a 90 MB row loads under 400 MB)."""
    return base_mb + columns * 96 // 1024 + 3 * object_bytes // 2**20


class DuckDbWarehouse:
    """Loads a group in one transaction that first removes what an earlier attempt left.

    The file is opened, and its write lock taken, only when a load or a count first needs it,
    and released by `close`: analysts can read the warehouse while a long run stages.
    """

    # A group's rows sit in the load's transaction until COMMIT: keep it to a few batches.
    max_group_bytes = 256 * 2**20

    def __init__(
        self,
        path: Path,
        allowance: Callable[[], LoadAllowance] | None = None,
        text_columns: frozenset[str] = frozenset(),
        layout: TableLayout | None = None,
    ) -> None:
        """Check now that the file can be created (before anything is staged); `allowance` is
        asked for DuckDB's memory settings when the file is opened, just before the load.
        `layout`: a new table's descriptions (DuckDB has no partitions or clusters: those are
        only checked against the columns, so a mistake shows before BigQuery meets it)."""
        self.path = warehouse_file(path)
        self.layout = layout or TableLayout()
        self._allowance = allowance or (lambda: PLENTIFUL)
        self.text_columns = text_columns  # may widen to VARCHAR here: the user asked (--string-columns)
        self._connection: duckdb.DuckDBPyConnection | None = None
        self.memory_limit_mb: int | None = None  # DuckDB's, once opened (a load may raise it for a while)
        self.threads = 2

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._connection is None:
            allowance = self._allowance()
            self.memory_limit_mb, self.threads = allowance.memory_limit_mb, allowance.threads
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

    def _columns(self, table: str) -> dict[str, str]:
        """The table's columns and their types (empty: no such table)."""
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = ?", [table]
        ).fetchall()
        return dict(rows)

    def _ensure_table(self, table: str, schema: Schema) -> None:
        name = identifier(table)
        check_layout(self.layout, schema, table)
        if not self._columns(table):
            with transaction(self._con):
                self._con.execute(f"CREATE TABLE IF NOT EXISTS {name} ({column_definitions(schema)})")
                self._describe(name, schema)
        existing = {column: column_type_of(kind) for column, kind in self._columns(table).items()}
        for column, kind in schema.items():
            if column not in existing:
                self._con.execute(
                    f"ALTER TABLE {name} ADD COLUMN {identifier(column, 'column name')} {duckdb_type(kind)}"
                )
            elif existing[column] != kind:
                self._widen(table, column, existing[column], kind)

    def _describe(self, name: str, schema: Schema) -> None:
        """The pipeline's descriptions of a new table and its columns, as DuckDB comments."""
        if self.layout.description:
            self._con.execute(f"COMMENT ON TABLE {name} IS {text_literal(self.layout.description)}")
        for column, text in self.layout.column_descriptions.items():
            if column in schema:
                quoted = identifier(column, "column name")
                self._con.execute(f"COMMENT ON COLUMN {name}.{quoted} IS {text_literal(text)}")

    def _widen(self, table: str, column: str, old: FieldType, new: FieldType) -> None:
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
        try:
            return self._load(table, schema, group, files)
        except duckdb.InvalidInputException as exc:
            if "maximum_object_size" not in str(exc):
                raise
        # A row over DuckDB's default JSON object size (16 MiB; bqhold stages rows up to
        # --max-record-bytes): again with room for the largest, which no file exceeds.
        return self._load(table, schema, group, files, max(f.stat().st_size for f in files) + 1)

    def _load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], object_bytes: int = 0) -> int:
        _ = self._con  # opened: the budget's memory limit and threads are known
        base_mb, base_threads = self.memory_limit_mb, self.threads
        # Large rows load on one thread: each reading thread holds buffers twice the largest row.
        threads = 1 if object_bytes else base_threads
        cap_mb = min(base_mb, PARQUET_LOAD_CEILING_MB) if is_parquet(files) else base_mb
        self._configure(load_memory_mb(len(schema), cap_mb, object_bytes), threads)
        try:
            return self._load_group(table, schema, group, files, object_bytes)
        finally:
            self._configure(base_mb, base_threads)

    def _configure(self, memory_mb: int, threads: int) -> None:
        self._con.execute(f"SET memory_limit = '{int(memory_mb)}MB'")
        self._con.execute(f"SET threads = {threads}")

    def _load_group(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], object_bytes: int) -> int:
        self._ensure_table(table, schema)
        batches = list(group.batches)
        con = self._con
        try:
            with disk_full_as_error(self.path, "the DuckDB warehouse"), transaction(con):
                con.execute(
                    f"DELETE FROM {identifier(table)} WHERE _run_id = ? AND list_contains(?, _batch)",
                    [group.run_id, batches],
                )
                rows = rows_sql(con, files, schema, object_bytes or None)
                con.execute(f"INSERT INTO {identifier(table)} BY NAME {rows}")
                [(loaded,)] = con.execute(
                    f"SELECT count(*) FROM {identifier(table)} WHERE _run_id = ? AND list_contains(?, _batch)",
                    [group.run_id, batches],
                ).fetchall()
        except duckdb.OutOfMemoryException as exc:
            raise ResourceError(
                f"the DuckDB warehouse ran out of its {self.memory_limit_mb} MB budget loading {group.load_id}; "
                "re-run to resume"
            ) from exc
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

    # -- merge and replace ---------------------------------------------------------------

    @staticmethod
    def _key_sql(key: tuple[str, ...]) -> str:
        sql = identifier(key[0], "column name")
        for field in key[1:]:
            sql = f"struct_extract({sql}, {text_literal(field)})"
        return sql

    def publish(self, mode: WriteMode, table: str, staging: str, schema: Schema, key: tuple[str, ...] | None) -> None:
        """Make `table` hold the verified rows of `staging` by `mode`, in one transaction:
        merge (rows of keys the table has are replaced, the others added) or replace (exactly
        them). Doing it again changes nothing."""
        self._ensure_table(table, schema)
        target, source = identifier(table), identifier(staging)
        con = self._con
        with disk_full_as_error(self.path, "the DuckDB warehouse"), transaction(con):
            if mode == "replace":
                con.execute(f"DELETE FROM {target}")
            else:
                assert key is not None
                matched = self._key_sql(key)
                con.execute(f"DELETE FROM {target} WHERE {matched} IN (SELECT {matched} FROM {source})")
            con.execute(f"INSERT INTO {target} BY NAME SELECT * FROM {source}")

    def table_counts(self, table: str, key: tuple[str, ...] | None = None) -> tuple[int, int | None]:
        """The table's rows, and its distinct keys (None without `key`)."""
        distinct = f"count(DISTINCT {self._key_sql(key)})" if key else "NULL"
        [(rows, keys)] = self._con.execute(f"SELECT count(*), {distinct} FROM {identifier(table)}").fetchall()
        return int(rows), None if keys is None else int(keys)

    def drop(self, table: str) -> None:
        """Drop `table` (a run's staging table, once the run is delivered); none is fine."""
        self._con.execute(f"DROP TABLE IF EXISTS {identifier(table)}")

    def close(self) -> None:
        """Close the database, if it was opened (idempotent)."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None
