"""HOLD₂'s DuckDB: runs, the batch ledger, staged rows, dedupe keys and load records.

One process writes a hold directory at a time (DuckDB's own file lock refuses a second).
Staged rows live in schema `staged`, one table per destination table, with the columns
`_run_id`, `_batch`, `_loaded_at` that the warehouse verification counts by.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, astuple
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl

from tasks.core.checkpoint import Counters, Phase
from tasks.core.duckdb_types import DUCKDB_TYPES, column_definitions, column_type_of, identifier
from tasks.core.errors import StateError
from tasks.core.inputs import InputFile, InputFormat
from tasks.core.layout import HoldLayout
from tasks.core.ledger import LedgerEntry
from tasks.core.metrics import StageMetric
from tasks.core.records import Position
from tasks.core.runs import JobIdentity, RunRecord
from tasks.core.schema import Schema
from tasks.core.staging import META_COLUMNS, KeyProbe

STAGED_SCHEMA = "staged"

_DDL = """
CREATE TABLE IF NOT EXISTS runs (
    run_id VARCHAR PRIMARY KEY, pipeline VARCHAR, input_spec VARCHAR, table_name VARCHAR,
    key_field VARCHAR, warehouse VARCHAR, inputs VARCHAR, fingerprint VARCHAR,
    created_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS run_status (
    run_id VARCHAR, status VARCHAR, message VARCHAR, changed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS ledger (
    run_id VARCHAR, batch INTEGER, segment VARCHAR, quarantine VARCHAR,
    rows_read BIGINT, rows_written BIGINT, rows_quarantined BIGINT, duplicates_skipped BIGINT,
    end_file INTEGER, end_offset BIGINT, end_line BIGINT, input_done BOOLEAN,
    committed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS loaded_batches (
    run_id VARCHAR, batch INTEGER, load_id VARCHAR, warehouse VARCHAR, delivery INTEGER, loaded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS dedupe_keys (
    table_name VARCHAR, key_hash UBIGINT, key VARCHAR, run_id VARCHAR, batch INTEGER);
CREATE SCHEMA IF NOT EXISTS staged;
CREATE TABLE IF NOT EXISTS pipeline_metrics (
    run_id VARCHAR, batch INTEGER, stage VARCHAR, started_at TIMESTAMPTZ, duration_s DOUBLE, rows BIGINT,
    rss_before_mb DOUBLE, rss_after_mb DOUBLE, rss_peak_mb DOUBLE, batch_size INTEGER, decision VARCHAR);
CREATE OR REPLACE VIEW v_memory_by_stage AS
    SELECT run_id, stage, count(*) AS calls, sum(rows) AS rows, round(sum(duration_s), 3) AS total_s,
           round(avg(duration_s), 4) AS avg_s, round(max(rss_peak_mb), 1) AS peak_rss_mb,
           round(avg(rss_peak_mb - rss_before_mb), 1) AS avg_rise_mb
    FROM pipeline_metrics GROUP BY run_id, stage;
CREATE OR REPLACE VIEW v_memory_timeline AS
    SELECT run_id, started_at, batch, stage, duration_s, rows, rss_before_mb, rss_peak_mb, rss_after_mb,
           batch_size, decision
    FROM pipeline_metrics ORDER BY run_id, started_at;
"""


def _now() -> datetime:
    return datetime.now(UTC)


def insert_memory_mb(rows: pl.DataFrame, base_mb: int) -> int:
    """DuckDB's memory cap while one batch's rows are inserted: its cache cap plus room for the
    rows (measured: ~20 KiB per column of a wide batch, ~2-3x the rows' own size in blocks)."""
    return base_mb + (rows.width * 24 * 1024 + 3 * rows.estimated_size()) // 2**20


class HoldStore:
    """An open HOLD₂ database; close it (or use `with`) when the run ends."""

    def __init__(self, layout: HoldLayout, memory_limit_mb: int = 64) -> None:
        layout.root.mkdir(parents=True, exist_ok=True)
        self.layout, self._memory_limit_mb = layout, memory_limit_mb
        try:
            self._con = duckdb.connect(str(layout.database))
        except duckdb.IOException as exc:
            raise StateError(
                f"{layout.database} is in use by another bqhold run (or not a DuckDB file): {str(exc).splitlines()[0]}"
            ) from exc
        # DuckDB caches up to 80% of RAM by default, and a run's dedupe probes touch every key:
        # a small cap keeps the run's memory flat as HOLD₂ grows (measured: 256 MB let RSS
        # creep ~35 MB per million rows; 64 MB holds it level, the OS page cache serves the rest).
        self._set_memory_limit(memory_limit_mb)
        self._con.execute("SET threads = 2")
        self._con.execute(_DDL)
        self._schemas: dict[str, Schema] = {}

    def _set_memory_limit(self, megabytes: int) -> None:
        self._con.execute(f"SET memory_limit = '{int(megabytes)}MB'")

    def __enter__(self) -> HoldStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the database (idempotent)."""
        self._con.close()

    # -- runs -------------------------------------------------------------------------

    def create_run(self, run: RunRecord) -> None:
        """Remember a new run."""
        inputs = json.dumps([{**asdict(item), "format": item.format.value} for item in run.inputs])
        job = run.job
        self._con.execute(
            "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                run.run_id,
                job.pipeline,
                job.input_spec,
                job.table,
                job.key,
                job.warehouse,
                inputs,
                run.fingerprint,
                run.created_at,
            ],
        )
        self.set_status(run.run_id, run.status)

    def set_status(self, run_id: str, status: Phase, message: str | None = None) -> None:
        """Record a run's new status (the history is kept)."""
        self._con.execute("INSERT INTO run_status VALUES (?, ?, ?, ?)", [run_id, status.value, message, _now()])

    def forget_run(self, run_id: str) -> None:
        """Remove every trace of a run that staged nothing (no ledger entry), files included."""
        if self.ledger(run_id):
            raise StateError(f"run {run_id} has staged batches in HOLD₂; it is kept")
        self._con.execute("BEGIN TRANSACTION")
        try:
            for table in ("runs", "run_status", "pipeline_metrics"):
                self._con.execute(f"DELETE FROM {table} WHERE run_id = ?", [run_id])
            self._con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise
        shutil.rmtree(self.layout.run_dir(run_id), ignore_errors=True)

    def runs(self) -> list[RunRecord]:
        """Every run in this hold directory, with its latest status."""
        rows = self._con.execute(
            """
            SELECT r.*, s.status FROM runs r
            JOIN (SELECT run_id, arg_max(status, changed_at) AS status FROM run_status GROUP BY run_id) s USING (run_id)
            ORDER BY r.created_at
            """
        ).fetchall()
        return [self._run_from_row(row) for row in rows]

    def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""
        return next((run for run in self.runs() if run.run_id == run_id), None)

    @staticmethod
    def _run_from_row(row: tuple) -> RunRecord:
        run_id, pipeline, input_spec, table, key, warehouse, inputs, fingerprint, created_at, status = row
        files = tuple(
            InputFile(item["path"], InputFormat(item["format"]), item["size"], item["mtime_ns"])
            for item in json.loads(inputs)
        )
        job = JobIdentity(pipeline, input_spec, table, key, warehouse)
        return RunRecord(run_id, job, files, fingerprint, Phase(status), created_at)

    # -- staging ----------------------------------------------------------------------

    def staged_schema(self, table: str) -> Schema:
        """The columns of the staged table for `table` (empty if none yet), without meta columns."""
        if table not in self._schemas:
            self._schemas[table] = self._read_staged_schema(table)
        return dict(self._schemas[table])

    def _read_staged_schema(self, table: str) -> Schema:
        rows = self._con.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            [STAGED_SCHEMA, table],
        ).fetchall()
        return {name: column_type_of(kind) for name, kind in rows if name not in META_COLUMNS}

    def find_duplicates(self, table: str, keys: pl.Series) -> KeyProbe:
        """Which keys are already staged for `table` (hash probe, then exact comparison), with
        each key's hash (md5, stable across versions: ~40 ms per 50k keys, so done once)."""
        self._con.register("bqhold_keys", pl.DataFrame({"key": keys}).to_arrow())
        try:
            hashes = pl.from_arrow(
                self._con.sql("SELECT md5_number_lower(key) AS key_hash FROM bqhold_keys").to_arrow_table()
            )["key_hash"]
        finally:
            self._con.unregister("bqhold_keys")
        batch = pl.DataFrame(
            {"row_nr": pl.int_range(keys.len(), eager=True, dtype=pl.UInt32), "key": keys, "key_hash": hashes}
        )
        self._con.register("bqhold_batch_keys", batch.to_arrow())
        try:
            found = self._con.sql(
                """
                SELECT DISTINCT b.row_nr FROM bqhold_batch_keys b
                JOIN dedupe_keys k ON k.key_hash = b.key_hash AND k.table_name = $table
                WHERE k.key = b.key
                """,
                params={"table": table},
            ).to_arrow_table()
        finally:
            self._con.unregister("bqhold_batch_keys")
        duplicate_rows = pl.from_arrow(found)["row_nr"] if found.num_rows else pl.Series([], dtype=pl.UInt32)
        return KeyProbe(batch["row_nr"].is_in(duplicate_rows.implode()), hashes)

    def commit_batch(
        self,
        table: str,
        entry: LedgerEntry,
        rows: pl.DataFrame,
        keys: pl.Series | None,
        key_hashes: pl.Series | None,
        new_columns: Schema,
        before_commit: Callable[[], None] = lambda: None,
    ) -> None:
        """Stage one batch's rows, keys and ledger entry in a single transaction.

        `before_commit` runs inside the transaction just before COMMIT (the caller waits there
        for its segment file to be durable): a batch counts as staged exactly when this
        commits, so a crash before leaves no row, key or ledger entry of it.
        """
        con = self._con
        # Wide or large rows need room beyond the small cache cap (2,000 columns need ~40 MB,
        # a 90 MB value a 90 MB block); the cap comes back once the batch is in.
        room = insert_memory_mb(rows, self._memory_limit_mb)
        self._set_memory_limit(room)
        con.execute("BEGIN TRANSACTION")
        try:
            if con.execute(
                "SELECT count(*) FROM ledger WHERE run_id = ? AND batch = ?", [entry.run_id, entry.batch]
            ).fetchone()[0]:
                raise StateError(f"batch {entry.batch} of run {entry.run_id} is already in HOLD₂'s ledger")
            self._ensure_staged_table(table, new_columns)
            if rows.height:
                con.register("bqhold_batch_rows", rows.to_arrow())
                con.execute(f"INSERT INTO {STAGED_SCHEMA}.{identifier(table)} BY NAME SELECT * FROM bqhold_batch_rows")
                con.unregister("bqhold_batch_rows")
            if keys is not None and keys.len():
                con.register("bqhold_new_keys", pl.DataFrame({"key": keys, "key_hash": key_hashes}).to_arrow())
                con.execute(
                    "INSERT INTO dedupe_keys SELECT ?, key_hash, key, ?, ? FROM bqhold_new_keys",
                    [table, entry.run_id, entry.batch],
                )
                con.unregister("bqhold_new_keys")
            counters = entry.counters
            con.execute(
                "INSERT INTO ledger VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    entry.run_id,
                    entry.batch,
                    entry.segment,
                    entry.quarantine,
                    counters.rows_read,
                    counters.rows_written,
                    counters.rows_quarantined,
                    counters.duplicates_skipped,
                    entry.end.file_index,
                    entry.end.offset,
                    entry.end.line,
                    entry.input_done,
                    _now(),
                ],
            )
            before_commit()
            con.execute("COMMIT")
            if room > 2 * self._memory_limit_mb:
                # Written out while the room is there: a later checkpoint under the small cap
                # could not pin the batch's large blocks (and would leave the database unusable).
                con.execute("CHECKPOINT")
            if new_columns:
                self._schemas.pop(table, None)
        except BaseException:
            self._rollback()
            raise
        finally:
            self._set_memory_limit(self._memory_limit_mb)

    def _rollback(self) -> None:
        """Roll back if a transaction is still open (a failed COMMIT has already ended it)."""
        try:
            self._con.execute("ROLLBACK")
        except duckdb.Error:
            pass

    def _ensure_staged_table(self, table: str, new_columns: Schema) -> None:
        name = f"{STAGED_SCHEMA}.{identifier(table)}"
        if not self._table_exists(table):
            # One CREATE with every column: one ALTER per column costs O(columns²) (2,000: 2 s).
            self._con.execute(f"CREATE TABLE {name} ({column_definitions(META_COLUMNS | new_columns)})")
            return
        for column, kind in new_columns.items():
            self._con.execute(
                f"ALTER TABLE {name} ADD COLUMN IF NOT EXISTS {identifier(column, 'column name')} {DUCKDB_TYPES[kind]}"
            )

    def ledger(self, run_id: str, warehouse: str | None = None, delivery: int = 0) -> list[LedgerEntry]:
        """The run's committed batches in order; with `warehouse`, each with its load id there
        (for that delivery) once loaded."""
        rows = self._con.execute(
            """
            SELECT l.batch, l.segment, l.quarantine, l.rows_read, l.rows_written, l.rows_quarantined,
                   l.duplicates_skipped, l.end_file, l.end_offset, l.end_line, l.input_done, lb.load_id
            FROM ledger l
            LEFT JOIN (SELECT batch, arg_max(load_id, loaded_at) AS load_id FROM loaded_batches
                       WHERE run_id = $run AND warehouse = $warehouse AND delivery = $delivery
                       GROUP BY batch) lb USING (batch)
            WHERE l.run_id = $run ORDER BY l.batch
            """,
            {"run": run_id, "warehouse": warehouse, "delivery": delivery},
        ).fetchall()
        return [
            LedgerEntry(
                run_id=run_id,
                batch=batch,
                segment=segment,
                quarantine=quarantine,
                counters=Counters(read, written, quarantined, duplicates),
                end=Position(end_file, end_offset, end_line),
                input_done=input_done,
                load_id=load_id,
            )
            for (
                batch,
                segment,
                quarantine,
                read,
                written,
                quarantined,
                duplicates,
                end_file,
                end_offset,
                end_line,
                input_done,
                load_id,
            ) in rows
        ]

    def _table_exists(self, table: str) -> bool:
        # fetchall, not fetchone: a result left unfinished blocks the next register() (DuckDB 2).
        [(count,)] = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
            [STAGED_SCHEMA, table],
        ).fetchall()
        return bool(count)

    def drop_staged_rows(self, table: str, run_id: str) -> None:
        """Delete a run's rows from the staged table (cleanup, after verification)."""
        if self._table_exists(table):
            self._con.execute(f"DELETE FROM {STAGED_SCHEMA}.{identifier(table)} WHERE _run_id = ?", [run_id])

    def record_metrics(self, metrics: list[StageMetric]) -> None:
        """Append stage metrics (observations: written after the batch, not with it), in one commit."""
        if not metrics:
            return
        self._con.execute("BEGIN TRANSACTION")
        try:
            self._con.executemany(
                "INSERT INTO pipeline_metrics VALUES (?, ?, ?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?)",
                [astuple(metric) for metric in metrics],  # the table's columns are the dataclass's fields
            )
            self._con.execute("COMMIT")
        except BaseException:
            self._rollback()
            raise

    # -- loading ----------------------------------------------------------------------

    def record_load(self, run_id: str, load_id: str, batches: list[int], warehouse: str, delivery: int = 0) -> None:
        """Mark batches as held by `warehouse` under `load_id`."""
        at = _now()
        self._con.executemany(
            "INSERT INTO loaded_batches VALUES (?, ?, ?, ?, ?, ?)",
            [[run_id, batch, load_id, warehouse, delivery, at] for batch in batches],
        )

    def last_delivery(self, run_id: str, warehouse: str) -> int:
        """The highest delivery number used for a run in a warehouse (0: only the first)."""
        row = self._con.execute(
            "SELECT max(delivery) FROM loaded_batches WHERE run_id = ? AND warehouse = ?", [run_id, warehouse]
        ).fetchone()
        return int(row[0] or 0)

    def segment_path(self, entry: LedgerEntry) -> Path:
        """The absolute path of a ledger entry's segment file."""
        return self.layout.root / entry.segment
