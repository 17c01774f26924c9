"""HOLD₂'s DuckDB: runs, the batch ledger, staged columns, dedupe keys and load records.

One process writes a hold directory at a time (DuckDB's own file lock refuses a second).
With a durable HOLD₂ (`--hold-url`, a `HoldMirror`) the hold directory is its working copy: each
change is written to the mirror's journal before it commits here (so a change counts once the
journal has it), and a working copy behind the journal (a fresh machine's empty one, or one a kill
left a change behind) applies what it lacks when it opens. A change is made by one `_apply_<op>`
method, both when it is made and when it is applied from the journal.
The staged rows are not in the database: they are in the segment files, sealed once written.
The database keeps each destination table's staged columns (`staged_columns`) and shows its rows
as a view in schema `staged` over the segments the ledger names, with the columns `_run_id`,
`_batch`, `_loaded_at`, `_row_hash` that the warehouse verification counts and sums by.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, astuple, replace
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core import faults
from bqhold.tasks.core.checkpoint import Checkpoint, Counters, Phase
from bqhold.tasks.core.column_types import Schema, parse_type
from bqhold.tasks.core.duckdb_types import check_widening, column_type_of, identifier, text_literal
from bqhold.tasks.core.errors import ConfigError, HoldDamaged, StateError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.journal import JournalEntry
from bqhold.tasks.core.key_hash import hash_keys
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.ledger import LedgerEntry, SegmentSeal, SourceSpan
from bqhold.tasks.core.metrics import StageMetric
from bqhold.tasks.core.paths import writable_directory
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import JobIdentity, RunRecord
from bqhold.tasks.core.segment_rows import longest_line_bytes, rows_sql
from bqhold.tasks.core.staging import META_COLUMNS, ROW_HASH, KeyProbe, PreparedBatch
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.storage.duckdb_files import connect, transaction
from bqhold.tasks.storage.mirror import HoldMirror

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
CREATE TABLE IF NOT EXISTS key_batches (
    scope INTEGER, table_name VARCHAR, warehouse VARCHAR, run_id VARCHAR, batch INTEGER);
CREATE TABLE IF NOT EXISTS dedupe_keys (scope INTEGER, key_xxh3 UBIGINT, key VARCHAR);
CREATE TABLE IF NOT EXISTS key_dependencies (run_id VARCHAR, batch INTEGER, depends_on VARCHAR);
CREATE TABLE IF NOT EXISTS hold_info (hold_id VARCHAR);
CREATE TABLE IF NOT EXISTS staged_columns (table_name VARCHAR, position INTEGER, column_name VARCHAR, type VARCHAR);
CREATE TABLE IF NOT EXISTS hold_mirror (url VARCHAR, applied BIGINT);
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
# Columns added after the first release: existing hold directories gain them on open.
_ADDED_COLUMNS = (
    ("runs", "write_mode", "VARCHAR"),  # NULL: a run from before write modes, which appended
    ("ledger", "end_crc", "UBIGINT"),
    ("ledger", "source_file", "INTEGER"),
    ("ledger", "source_end", "BIGINT"),
    ("ledger", "source_line", "BIGINT"),
    ("ledger", "source_crc", "UBIGINT"),
    ("ledger", "source_done", "BOOLEAN"),
    ("ledger", "source_size", "BIGINT"),
    ("ledger", "source_mtime_ns", "BIGINT"),
    ("ledger", "segment_bytes", "BIGINT"),
    ("ledger", "segment_crc", "UBIGINT"),
    ("ledger", "row_hash_sum", "BIGINT"),
)
_LEDGER_COLUMNS = (
    "run_id, batch, segment, quarantine, rows_read, rows_written, rows_quarantined, duplicates_skipped, "
    "end_file, end_offset, end_line, end_crc, input_done, source_file, source_end, source_line, source_crc, "
    "source_done, source_size, source_mtime_ns, segment_bytes, segment_crc, row_hash_sum, committed_at"
)
_LEDGER_COLUMN_COUNT = len(_LEDGER_COLUMNS.split(","))

# Added later, kept apart so older hold dirs gain them: each batch's sum of its rows' `_row_hash`
# (NULL for batches staged before it existed: verified by count only), and the hold id — random,
# made once per HOLD₂, part of every BigQuery job id so that two hold dirs never share one.


def _now() -> str:
    """Now, as HOLD₂ stores it (ISO 8601 text: the same in the database and in the journal)."""
    return datetime.now(UTC).isoformat()


def _arrow_key_hashes(keys: pa.Array) -> pa.Array:
    """hash_keys as a DuckDB function over Arrow arrays."""
    return hash_keys(pl.from_arrow(keys)).to_arrow()


def insert_memory_mb(keys: pl.DataFrame, base_mb: int) -> int:
    """DuckDB's memory cap while one batch's keys are inserted: its cache cap plus room for them
    (measured: ~2-3x their own size in blocks; a key may be as long as a record)."""
    return base_mb + 3 * keys.estimated_size() // 2**20


class HoldStore:
    """An open HOLD₂ database; close it (or use `with`) when the run ends."""

    def __init__(self, layout: HoldLayout, memory_limit_mb: int = 32, mirror: HoldMirror | None = None) -> None:
        self.layout, self._memory_limit_mb, self._mirror = layout, memory_limit_mb, mirror
        self._memory_cap_mb = memory_limit_mb  # the cap set now (raised for a while by some steps)
        writable_directory(layout.root, "--hold-dir")
        # DuckDB caches up to 80% of RAM by default, and a run's dedupe probes touch every key:
        # a small cap keeps the run's memory flat as HOLD₂ grows (measured: 256 MB let RSS
        # creep ~35 MB per million rows; 64 MB holds it level, the OS page cache serves the rest;
        # 32 MB probes and commits 5M keys as fast, bench/probe.py, at 30-35 MB less peak).
        self._con = connect(
            layout.database,
            flag="--hold-dir",
            named=layout.root,
            in_use="is in use by another bqhold run",
            setup=(f"SET memory_limit = '{int(memory_limit_mb)}MB'", "SET threads = 2", _DDL),
        )
        self._schemas: dict[str, Schema] = {}
        self._hold_id: str | None = None
        # Tables whose view is behind the ledger: rewritten when read here and on close (nothing
        # else can read it meanwhile: the open database is locked), not in every commit, which
        # would read every segment's footer per batch.
        self._stale_views: set[str] = set()
        try:
            self._migrate()
            self._applied = self._catch_up()  # the journal's last entry this working copy holds
        except BaseException:
            self.close()
            raise
        for table in self._staged_tables():  # the view's file paths follow a hold dir that moved
            self._refresh_view(table)

    def _migrate(self) -> None:
        """Add the columns later versions introduced, and bring older hold dirs' tables to today's."""
        present = set(self._con.execute("SELECT table_name, column_name FROM information_schema.columns").fetchall())
        for table, column, kind in _ADDED_COLUMNS:
            if (table, column) not in present:
                self._con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
        if ("dedupe_keys", "table_name") in present:
            self._scope_keys(scoped_by_warehouse=("dedupe_keys", "warehouse") in present)
        if ("dedupe_keys", "key_hash") in present:
            self._rehash_keys()
        self._move_rows_out()

    def _scope_keys(self, scoped_by_warehouse: bool) -> None:
        """Hold dirs from before kept each key's table, warehouse, run and batch beside it (~130
        bytes a key to write and commit, against ~50 now): each (table, warehouse, run, batch)
        becomes one row of key_batches, and its keys name it by number. Keys staged before keys
        were scoped by warehouse take their run's."""
        with self._room(256), self._transaction():
            con = self._con
            if not scoped_by_warehouse:
                con.execute("ALTER TABLE dedupe_keys ADD COLUMN warehouse VARCHAR")
                con.execute(
                    "UPDATE dedupe_keys SET warehouse = r.warehouse FROM runs r WHERE dedupe_keys.run_id = r.run_id"
                )
            con.execute(
                """
                INSERT INTO key_batches
                SELECT row_number() OVER (ORDER BY run_id, batch, table_name, warehouse), *
                FROM (SELECT DISTINCT table_name, warehouse, run_id, batch FROM dedupe_keys)
                """
            )
            self._rewrite_dedupe_keys(
                """
                SELECT b.scope, k.key_hash, k.key FROM dedupe_keys k
                JOIN key_batches b ON k.table_name IS NOT DISTINCT FROM b.table_name
                    AND k.warehouse IS NOT DISTINCT FROM b.warehouse
                    AND k.run_id IS NOT DISTINCT FROM b.run_id AND k.batch IS NOT DISTINCT FROM b.batch
                """
            )

    def _rehash_keys(self) -> None:
        """Hold dirs from before stored each key's md5 (md5_number_lower): each stored key is
        hashed again with today's hash (tasks/core/key_hash.py), in one transaction."""
        self._con.create_function("bqhold_key_hash", _arrow_key_hashes, ["VARCHAR"], "UBIGINT", type="arrow")
        try:
            with self._room(256), self._transaction():
                self._rewrite_dedupe_keys("SELECT scope, bqhold_key_hash(key) AS key_xxh3, key FROM dedupe_keys")
        finally:
            self._con.remove_function("bqhold_key_hash")

    def _rewrite_dedupe_keys(self, select: str) -> None:
        """Replace dedupe_keys by what `select` (which reads it) gives, in the caller's transaction."""
        self._con.execute(f"CREATE TABLE rewritten_keys AS {select}")
        self._con.execute("DROP TABLE dedupe_keys")
        self._con.execute("ALTER TABLE rewritten_keys RENAME TO dedupe_keys")

    def _move_rows_out(self) -> None:
        """Hold dirs from before the view kept a copy of every staged row in a table: its columns
        become the table's staged columns and the copy goes (the rows are in the segments)."""
        tables = self._con.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ? AND table_type = 'BASE TABLE'",
            [STAGED_SCHEMA],
        ).fetchall()
        for (table,) in tables:
            columns = self._con.execute(
                "SELECT column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                [STAGED_SCHEMA, table],
            ).fetchall()
            with self._transaction():
                self._con.execute("DELETE FROM staged_columns WHERE table_name = ?", [table])
                self._add_columns(table, {n: column_type_of(k) for n, k in columns if n not in META_COLUMNS})
                self._con.execute(f"DROP TABLE {STAGED_SCHEMA}.{identifier(table)}")

    def _set_memory_limit(self, megabytes: int) -> None:
        self._con.execute(f"SET memory_limit = '{int(megabytes)}MB'")
        self._memory_cap_mb = int(megabytes)

    def __enter__(self) -> HoldStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Bring the views up to the ledger, close the database and give the mirror's lease up
        (idempotent)."""
        stale, self._stale_views = self._stale_views, set()
        try:
            for table in sorted(stale):
                self._refresh_view(table)
        except duckdb.Error:
            pass  # (a connection that failed): the next open rewrites every view
        self._con.close()
        if self._mirror is not None:
            self._mirror.close()

    # -- the durable HOLD₂ ------------------------------------------------------------

    @property
    def durable(self) -> bool:
        """Whether this HOLD₂ has a durable copy its changes go to first."""
        return self._mirror is not None

    def _catch_up(self) -> int:
        """Apply the journal's entries this working copy lacks; return the last one it holds.

        A hold dir is the working copy of one durable HOLD₂ or of none: used with another, or
        without its own, it would part from the journal, so it is refused."""
        rows = self._con.execute("SELECT url, applied FROM hold_mirror").fetchall()
        where = self._mirror.where if self._mirror is not None else None
        root = self.layout.root
        if rows and where != rows[0][0]:
            url = rows[0][0]
            raise ConfigError(
                f"--hold-dir {root} is the working copy of the durable HOLD₂ {url}: run with --hold-url {url}, "
                "or give this HOLD₂ another --hold-dir"
            )
        if where is None:
            return 0
        if not rows:
            [(runs,)] = self._con.execute("SELECT count(*) FROM runs").fetchall()
            if runs:
                raise ConfigError(
                    f"--hold-dir {root} holds a HOLD₂ of its own: a durable HOLD₂ (--hold-url {where}) needs a "
                    "--hold-dir of its own (an empty or new directory)"
                )
            self._con.execute("INSERT INTO hold_mirror VALUES (?, 0)", [where])
        applied = rows[0][1] if rows else 0
        for entry in self._mirror.entries_from(max(applied, 1)):
            if entry.seq <= applied:  # the working copy's last entry: still in the journal, as it must be
                continue
            if entry.seq != applied + 1:
                raise HoldDamaged(f"{where}: journal entry {applied + 1} is missing (the next one is {entry.seq})")
            room = insert_memory_mb(entry.keys, 0) if entry.keys is not None else 0
            with self._room(room), self._transaction():
                getattr(self, f"_apply_{entry.op}")(entry.args, entry.keys)
                self._con.execute("UPDATE hold_mirror SET applied = ?", [entry.seq])
            applied = entry.seq
        return applied

    def _change(self, op: str, args: dict, keys: pl.DataFrame | None = None) -> None:
        """Make one change (`_apply_<op>`) in one transaction, journaled first on a durable HOLD₂."""
        with self._transaction():
            getattr(self, f"_apply_{op}")(args, keys)
            self._journal(op, args, keys)

    def _journal(self, op: str, args: dict, keys: pl.DataFrame | None = None) -> None:
        """Inside the change's transaction, just before COMMIT: write it to the durable HOLD₂'s
        journal (the change counts from then on) and note it as applied here."""
        if self._mirror is None:
            return
        seq = self._applied + 1
        self._mirror.append(JournalEntry(seq, op, args, keys if keys is not None and keys.height else None))
        self._applied = seq  # the journal's count, even if the COMMIT below fails: the next open applies it
        faults.reached("journal_written", args.get("batch"))
        self._con.execute("UPDATE hold_mirror SET applied = ?", [seq])

    def keep_files(self, paths: list[Path]) -> None:
        """Copy files of this hold dir to the durable HOLD₂ (nothing without one)."""
        if self._mirror is None:
            return
        for path in paths:
            self._mirror.put(path, path.relative_to(self.layout.root).as_posix())

    def _fetch_missing(self, relative: str) -> Path:
        """The local path of a file of this hold dir, fetched from the durable HOLD₂ first if it
        is not on this disk (a fresh machine's working copy holds no segment until one is read)."""
        path = self.layout.root / relative
        if self._mirror is not None and not path.exists():
            self._mirror.fetch(relative, path)
        return path

    @property
    def hold_id(self) -> str:
        """This HOLD₂'s own random id, made on first use and kept in its database."""
        if self._hold_id is None:
            row = self._con.execute("SELECT min(hold_id) FROM hold_info").fetchone()
            if row[0] is None:
                self._change("hold_id", {"hold_id": secrets.token_hex(6)})
                row = self._con.execute("SELECT min(hold_id) FROM hold_info").fetchone()
            self._hold_id = row[0]
        return self._hold_id

    def _apply_hold_id(self, args: dict, keys: None) -> None:
        self._con.execute("INSERT INTO hold_info VALUES (?)", [args["hold_id"]])

    # -- runs -------------------------------------------------------------------------

    def create_run(self, run: RunRecord, start: Checkpoint | None = None) -> None:
        """Remember a new run in its first phase, with the checkpoint it starts from."""
        inputs = json.dumps([{**asdict(item), "format": item.format.value} for item in run.inputs])
        job = run.job
        row = [
            run.run_id,
            job.pipeline,
            job.input_spec,
            job.table,
            job.key,
            job.warehouse,
            inputs,
            run.fingerprint,
            run.created_at.isoformat(),
            job.write_mode,
        ]
        self._change("create_run", {"row": row})
        self.set_phase(run.run_id, run.status, checkpoint=start)

    def _apply_create_run(self, args: dict, keys: None) -> None:
        row = [*args["row"], "append"][:10]  # a journal entry from before write modes has 9
        self._con.execute(
            "INSERT INTO runs (run_id, pipeline, input_spec, table_name, key_field, warehouse, inputs, fingerprint, "
            "created_at, write_mode) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            row,
        )

    def set_phase(
        self, run_id: str, phase: Phase, message: str | None = None, *, checkpoint: Checkpoint | None = None
    ) -> Checkpoint | None:
        """Move a run to `phase` (the history is kept): the one way a run's phase changes.

        The `run_status` row is the truth and is written first: it commits in the database that
        holds the ledger, and every command decides what a run is (resume it, report it delivered,
        clean it) from it. checkpoint.json's phase is a copy for whoever reads the file, written
        second: `checkpoint` if given (the runner's, which may be newer than the file), else the
        saved one. A crash in between leaves the copy one phase behind, never ahead, and planning
        never trusts it (it re-derives the phase from the ledger). An abandoned run's dedupe keys
        are released in the same transaction as its status, so its records stop counting at once.
        Returns the checkpoint written, if there was one to write.
        """
        self._change("set_phase", {"run_id": run_id, "phase": phase.value, "message": message, "at": _now()})
        return self._copy_phase(run_id, phase, checkpoint)

    def _apply_set_phase(self, args: dict, keys: None) -> None:
        run_id = args["run_id"]
        if args["phase"] == Phase.ABANDONED.value:
            self._con.execute(
                "DELETE FROM dedupe_keys WHERE scope IN (SELECT scope FROM key_batches WHERE run_id = ?)", [run_id]
            )
            self._con.execute("DELETE FROM key_batches WHERE run_id = ?", [run_id])
        self._con.execute(
            "INSERT INTO run_status VALUES (?, ?, ?, ?)", [run_id, args["phase"], args["message"], args["at"]]
        )

    def _copy_phase(self, run_id: str, phase: Phase, checkpoint: Checkpoint | None) -> Checkpoint | None:
        """Write `phase` into the run's checkpoint file (none, or a damaged one, is left to planning)."""
        path = self.layout.checkpoint(run_id)
        if checkpoint is None:
            try:
                checkpoint = checkpoints.load(path)
            except StateError:
                return None  # the next plan rebuilds it from the ledger
        if checkpoint is None:
            return None
        moved = replace(checkpoint, phase=phase)
        checkpoints.save(path, moved)
        return moved

    def _transaction(self) -> AbstractContextManager[None]:
        """One DuckDB transaction: committed when the block ends, rolled back if it raises."""
        return transaction(self._con)

    def forget_run(self, run_id: str) -> None:
        """Remove every trace of a run that staged nothing (no ledger entry), files included."""
        if self.ledger(run_id):
            raise StateError(f"run {run_id} has staged batches in HOLD₂; it is kept")
        self._change("forget_run", {"run_id": run_id})
        shutil.rmtree(self.layout.run_dir(run_id), ignore_errors=True)

    def _apply_forget_run(self, args: dict, keys: None) -> None:
        for table in ("runs", "run_status", "pipeline_metrics"):
            self._con.execute(f"DELETE FROM {table} WHERE run_id = ?", [args["run_id"]])

    def runs(self) -> list[RunRecord]:
        """Every run in this hold directory, with its latest status."""
        rows = self._con.execute(
            """
            SELECT r.run_id, r.pipeline, r.input_spec, r.table_name, r.key_field, r.warehouse, r.inputs,
                r.fingerprint, r.created_at, coalesce(r.write_mode, 'append'), s.status FROM runs r
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
        run_id, pipeline, input_spec, table, key, warehouse, inputs, fingerprint, created_at, mode, status = row
        files = tuple(InputFile(**{**item, "format": InputFormat(item["format"])}) for item in json.loads(inputs))
        job = JobIdentity(pipeline, input_spec, table, key, warehouse, mode)
        return RunRecord(run_id, job, files, fingerprint, Phase(status), created_at)

    # -- staging ----------------------------------------------------------------------

    def staged_schema(self, table: str) -> Schema:
        """The columns of the staged table for `table` (empty if none yet), without meta columns."""
        if table not in self._schemas:
            self._schemas[table] = self._read_staged_schema(table)
        return dict(self._schemas[table])

    def _read_staged_schema(self, table: str) -> Schema:
        rows = self._con.execute(
            "SELECT column_name, type FROM staged_columns WHERE table_name = ? ORDER BY position", [table]
        ).fetchall()
        return {name: parse_type(kind) for name, kind in rows}

    def _staged_tables(self) -> list[str]:
        """Every destination table with staged columns."""
        return [row[0] for row in self._con.execute("SELECT DISTINCT table_name FROM staged_columns").fetchall()]

    def find_duplicates(
        self,
        warehouse: str,
        table: str,
        keys: pl.Series,
        ignoring: tuple[str, int] = ("", -1),
        within: str | None = None,
    ) -> KeyProbe:
        """Which keys are already staged for `table` in `warehouse` and by which runs, with each
        key's hash (tasks/core/key_hash.py, computed once: the commit stores it). Keys of batch
        `ignoring` (run, batch) do not count: that batch is being staged again; with `within`,
        only that run's keys count."""
        batch = pl.DataFrame(
            {"row_nr": pl.int_range(keys.len(), eager=True, dtype=pl.UInt32), "key": keys, "key_hash": hash_keys(keys)}
        )
        # One snapshot for both steps: the rowids the hash probe finds are the rows the fetch reads.
        with self._transaction():
            candidates = self._hash_matches(table, warehouse, batch, within)
            stored = self._stored_keys(candidates["stored"])
        hits = (
            candidates.join(batch.select("row_nr", "key"), on="row_nr")
            .join(stored, on="stored")
            .filter(
                # Equal hashes are not equal keys (a 64-bit collision): only the exact key counts.
                (pl.col("key") == pl.col("stored_key"))
                & ~((pl.col("run_id") == ignoring[0]) & (pl.col("batch") == ignoring[1]))
            )
        )
        return KeyProbe(
            batch["row_nr"].is_in(hits["row_nr"].implode()),
            batch["key_hash"],
            frozenset(hits["run_id"].unique().to_list()),
        )

    def _hash_matches(self, table: str, warehouse: str, batch: pl.DataFrame, within: str | None) -> pl.DataFrame:
        """(row_nr, stored rowid) of every stored key of the scope (`within`: of that run only)
        whose hash a batch key has.

        The join reads only the hash column (and the scope's, which compress to nothing): the
        stored keys themselves, the bulk of the table, are read for these few rows only."""
        with self._registered("bqhold_batch_hashes", batch.select("row_nr", "key_hash")):
            found = self._con.sql(
                """
                SELECT b.row_nr, k.rowid AS stored FROM bqhold_batch_hashes b
                JOIN dedupe_keys k ON k.key_xxh3 = b.key_hash
                WHERE k.scope IN (
                    SELECT scope FROM key_batches WHERE table_name = $table AND warehouse = $warehouse
                    AND ($run IS NULL OR run_id = $run)
                )
                """,
                params={"table": table, "warehouse": warehouse, "run": within},
            ).to_arrow_table()
        return pl.from_arrow(found).cast({"row_nr": pl.UInt32, "stored": pl.Int64})

    def _stored_keys(self, rowids: pl.Series) -> pl.DataFrame:
        """The stored key, run and batch of dedupe_keys' rows `rowids`."""
        with self._registered("bqhold_hash_matches", pl.DataFrame({"stored": rowids})):
            found = self._con.sql(
                """
                SELECT k.rowid AS stored, k.key AS stored_key, b.run_id, b.batch
                FROM dedupe_keys k JOIN key_batches b USING (scope)
                WHERE k.rowid IN (SELECT stored FROM bqhold_hash_matches)
                """
            ).to_arrow_table()
        return pl.from_arrow(found).cast({"stored": pl.Int64, "stored_key": pl.String, "run_id": pl.String})

    @contextmanager
    def _registered(self, name: str, frame: pl.DataFrame) -> Iterator[None]:
        """`frame` visible to this connection's queries as `name` for the block."""
        self._con.register(name, frame.to_arrow())
        try:
            yield
        finally:
            self._con.unregister(name)

    def commit_batch(
        self,
        table: str,
        warehouse: str,
        entry: LedgerEntry,
        prepared: PreparedBatch,
        before_commit: Callable[[], SegmentSeal | None] = lambda: None,
    ) -> None:
        """Stage one batch's rows, keys and ledger entry in a single transaction.

        `before_commit` runs inside the transaction just before COMMIT (the caller waits there
        for its segment file to be durable, and gets back its seal): a batch counts as staged
        exactly when this commits (on a durable HOLD₂: when its journal has it, just before), so a
        crash before leaves no row, key or ledger entry of it. The keys count for `table` in
        `warehouse`; the batch's `depends_on` names the other runs whose keys made it skip records.
        """
        new_keys = _new_keys(prepared)
        # Long keys need room beyond the small cache cap; the cap comes back once the batch is in.
        room = insert_memory_mb(new_keys, self._memory_limit_mb)
        self._set_memory_limit(room)
        try:
            with self._transaction():
                [(count,)] = self._con.execute(
                    "SELECT count(*) FROM ledger WHERE run_id = ? AND batch = ?", [entry.run_id, entry.batch]
                ).fetchall()
                if count:
                    raise StateError(f"batch {entry.batch} of run {entry.run_id} is already in HOLD₂'s ledger")
                args = {
                    "table": table,
                    "warehouse": warehouse,
                    "run_id": entry.run_id,
                    "batch": entry.batch,
                    "new_columns": {name: kind.value for name, kind in prepared.new_columns.items()},
                    "depends_on": sorted(prepared.depends_on - {entry.run_id}),
                }
                self._record_columns(table, prepared.new_columns, check=True)
                self._insert_keys(args, new_keys)
                seal = before_commit()
                args["ledger"] = _ledger_row(replace(entry, seal=seal), _row_hash_sum(prepared.rows))
                self._insert_ledger(args["ledger"])
                self._journal("commit_batch", args, new_keys)
            self._stale_views.add(table)
            if room > 2 * self._memory_limit_mb:
                # Written out while the room is there: a later checkpoint under the small cap
                # could not pin the batch's large blocks (and would leave the database unusable).
                self._con.execute("CHECKPOINT")
        finally:
            self._set_memory_limit(self._memory_limit_mb)
            if prepared.new_columns:  # read again from what committed (or did not)
                self._schemas.pop(table, None)

    def _apply_commit_batch(self, args: dict, keys: pl.DataFrame | None) -> None:
        """A batch committed elsewhere, from the journal: checked there, so not again here."""
        table = args["table"]
        self._record_columns(table, {name: parse_type(kind) for name, kind in args["new_columns"].items()})
        self._insert_keys(args, keys)
        self._insert_ledger(args["ledger"])
        self._stale_views.add(table)

    def _insert_keys(self, args: dict, keys: pl.DataFrame | None) -> None:
        """A batch's new keys and key dependencies, inside the open transaction (its rows are in its segment)."""
        run_id, batch = args["run_id"], args["batch"]
        if keys is not None and keys.height:
            self.store_keys(args["table"], args["warehouse"], run_id, batch, keys)
        if args["depends_on"]:
            self._con.executemany(
                "INSERT INTO key_dependencies VALUES (?, ?, ?)", [[run_id, batch, o] for o in args["depends_on"]]
            )

    def _insert_ledger(self, row: list) -> None:
        self._con.execute(
            f"INSERT INTO ledger ({_LEDGER_COLUMNS}) VALUES ({', '.join(['?'] * _LEDGER_COLUMN_COUNT)})", row
        )

    def store_keys(self, table: str, warehouse: str, run_id: str, batch: int, keys: pl.DataFrame) -> None:
        """Add `keys` (key, key_hash) to the dedupe index as batch `batch` of `run_id` staged them
        for `table` in `warehouse` (inside the caller's transaction, if one is open)."""
        con = self._con
        [(scope,)] = con.execute("SELECT coalesce(max(scope), 0) + 1 FROM key_batches").fetchall()
        con.execute("INSERT INTO key_batches VALUES (?, ?, ?, ?, ?)", [scope, table, warehouse, run_id, batch])
        with self._registered("bqhold_new_keys", keys.select("key_hash", "key")):
            con.execute("INSERT INTO dedupe_keys SELECT ?, key_hash, key FROM bqhold_new_keys", [scope])

    def _record_columns(self, table: str, new_columns: Schema, check: bool = False) -> None:
        """Add the batch's new columns to the table's staged columns, and widen the ones it widens;
        with `check`, only once no staged value would change (the rows of the view, which reads
        them as they were: fetched first, on a fresh machine's working copy)."""
        if not new_columns:
            return
        present = self._read_staged_schema(table)
        for column, kind in new_columns.items():
            if column in present and present[column] != kind:
                if check:
                    with self._room_to_read(self._refresh_view(table, fetch=True)):
                        view = f"{STAGED_SCHEMA}.{identifier(table)}"
                        check_widening(self._con, view, f"HOLD₂'s table {table}", column, present[column], kind)
                self._con.execute(
                    "UPDATE staged_columns SET type = ? WHERE table_name = ? AND column_name = ?",
                    [kind.value, table, column],
                )
        self._add_columns(table, {name: kind for name, kind in new_columns.items() if name not in present})
        self._schemas.pop(table, None)

    def _add_columns(self, table: str, columns: Schema) -> None:
        """Append columns to a table's staged columns, in order."""
        if not columns:
            return
        for name in columns:
            identifier(name, "column name")
        [(last,)] = self._con.execute(
            "SELECT coalesce(max(position), -1) FROM staged_columns WHERE table_name = ?", [table]
        ).fetchall()
        self._con.executemany(
            "INSERT INTO staged_columns VALUES (?, ?, ?, ?)",
            [[table, last + 1 + index, name, kind.value] for index, (name, kind) in enumerate(columns.items())],
        )

    @contextmanager
    def _room(self, megabytes: int) -> Iterator[None]:
        """DuckDB's memory cap raised by `megabytes` for the block, then put back."""
        before = self._memory_cap_mb
        self._set_memory_limit(before + megabytes)
        try:
            yield
        finally:
            self._set_memory_limit(before)

    def _room_to_read(self, files: list[Path]) -> AbstractContextManager[None]:
        """Room for a scan of `files`: DuckDB's JSON reader holds two buffers as large as the
        longest line, per thread."""
        return self._room(5 * longest_line_bytes(files) // 2**20)

    def _view_files(self, table: str, fetch: bool = False) -> list[Path]:
        """The segments the table's view reads: every batch with rows of a run not cleaned up,
        whose file is there (with `fetch`, on this disk or in the durable HOLD₂)."""
        rows = self._con.execute(
            """
            SELECT l.segment FROM ledger l JOIN runs r USING (run_id)
            JOIN (SELECT run_id, arg_max(status, changed_at) AS status FROM run_status GROUP BY run_id) s USING (run_id)
            WHERE r.table_name = ? AND l.rows_written > 0 AND s.status <> ? ORDER BY l.committed_at, l.batch
            """,
            [table, Phase.CLEANED.value],
        ).fetchall()
        place = self._fetch_missing if fetch else self.layout.root.joinpath
        return [path for (segment,) in rows if (path := place(segment)).exists()]

    def _refresh_view(self, table: str, fetch: bool = False) -> list[Path]:
        """Point the table's view at the segments its ledger names now; return them."""
        files = self._view_files(table, fetch)
        columns = META_COLUMNS | self.staged_schema(table)
        view = f"{STAGED_SCHEMA}.{identifier(table)}"
        try:
            rows = rows_sql(self._con, files, columns, longest_line_bytes(files))
        except duckdb.Error as exc:
            # A damaged segment must not stop HOLD₂ from opening (loads name it, and repair
            # restages it): the view says what is wrong when it is read.
            rows = f"SELECT error({text_literal(f'a segment of table {table} cannot be read: {exc}')})"
        self._con.execute(f"CREATE OR REPLACE VIEW {view} AS {rows}")
        return files

    def ledger(self, run_id: str, warehouse: str | None = None, delivery: int = 0) -> list[LedgerEntry]:
        """The run's committed batches in order; with `warehouse`, each with its load id there
        (for that delivery) once loaded."""
        cursor = self._con.execute(
            f"""
            SELECT {_LEDGER_COLUMNS}, lb.load_id
            FROM ledger l
            LEFT JOIN (SELECT batch, arg_max(load_id, loaded_at) AS load_id FROM loaded_batches
                       WHERE run_id = $run AND warehouse = $warehouse AND delivery = $delivery
                       GROUP BY batch) lb USING (batch)
            WHERE l.run_id = $run ORDER BY l.batch
            """,
            {"run": run_id, "warehouse": warehouse, "delivery": delivery},
        )
        names = [column[0] for column in cursor.description]
        return [_ledger_entry(dict(zip(names, row, strict=True))) for row in cursor.fetchall()]

    def finished_files(self, run_ids: list[str]) -> list[tuple[str, SourceSpan]]:
        """(run, span) of every batch of these runs that read its file to the end."""
        if not run_ids:
            return []
        rows = self._con.execute(
            """
            SELECT run_id, source_file, source_end, source_line, source_crc, source_size, source_mtime_ns
            FROM ledger WHERE source_done AND list_contains($runs, run_id)
            """,
            {"runs": run_ids},
        ).fetchall()
        return [
            (run, SourceSpan(Position(index, end, line, crc), True, size, mtime))
            for run, index, end, line, crc, size, mtime in rows
        ]

    def dependents(self, run_id: str) -> list[str]:
        """Runs (not abandoned) that skipped records as duplicates of `run_id`'s keys."""
        rows = self._con.execute(
            """
            SELECT DISTINCT d.run_id FROM key_dependencies d
            JOIN (SELECT run_id, arg_max(status, changed_at) AS status FROM run_status GROUP BY run_id) s
              USING (run_id)
            WHERE d.depends_on = ? AND s.status <> ? ORDER BY d.run_id
            """,
            [run_id, Phase.ABANDONED.value],
        ).fetchall()
        return [row[0] for row in rows]

    def dependencies(self, run_id: str) -> list[str]:
        """Other runs whose keys made `run_id` skip records."""
        rows = self._con.execute(
            "SELECT DISTINCT depends_on FROM key_dependencies WHERE run_id = ? ORDER BY 1", [run_id]
        ).fetchall()
        return [row[0] for row in rows]

    def reseal(self, run_id: str, batch: int, seal: SegmentSeal) -> None:
        """Record the seal of a batch's segment written again from HOLD₁ (repair; kept in the
        durable HOLD₂ first by `keep_files`)."""
        self._change("reseal", {"run_id": run_id, "batch": batch, "size": seal.size, "crc": seal.crc})

    def _apply_reseal(self, args: dict, keys: None) -> None:
        self._con.execute(
            "UPDATE ledger SET segment_bytes = ?, segment_crc = ? WHERE run_id = ? AND batch = ?",
            [args["size"], args["crc"], args["run_id"], args["batch"]],
        )

    def fingerprints(self, run_id: str) -> dict[int, Fingerprint]:
        """Each committed batch's rows and row-hash sum, as verification expects them."""
        rows = self._con.execute(
            "SELECT batch, rows_written, row_hash_sum FROM ledger WHERE run_id = ?", [run_id]
        ).fetchall()
        return {batch: Fingerprint(written, total) for batch, written, total in rows}

    def forget_cleaned_rows(self, table: str) -> None:
        """Take the rows of cleaned runs out of the table's view (cleanup, once they are cleaned)."""
        if table in self._staged_tables():
            self._refresh_view(table)
            self._stale_views.discard(table)

    def record_metrics(self, metrics: list[StageMetric]) -> None:
        """Append stage metrics (observations: written after the batch, not with it), in one commit."""
        if not metrics:
            return
        with self._transaction():
            self._con.executemany(
                "INSERT INTO pipeline_metrics VALUES (?, ?, ?, to_timestamp(?), ?, ?, ?, ?, ?, ?, ?)",
                [astuple(metric) for metric in metrics],  # the table's columns are the dataclass's fields
            )

    # -- loading ----------------------------------------------------------------------

    def record_load(self, run_id: str, load_id: str, batches: list[int], warehouse: str, delivery: int = 0) -> None:
        """Mark batches as held by `warehouse` under `load_id`."""
        at = _now()
        self._change("record_load", {"rows": [[run_id, b, load_id, warehouse, delivery, at] for b in batches]})

    def _apply_record_load(self, args: dict, keys: None) -> None:
        self._con.executemany("INSERT INTO loaded_batches VALUES (?, ?, ?, ?, ?, ?)", args["rows"])

    def last_delivery(self, run_id: str) -> int:
        """The highest delivery number a run has used, in any warehouse (0: only the first).

        Numbered per run, not per warehouse: a delivery number is part of the load jobs' ids, so
        redeliveries to two datasets or tables must never share one.
        """
        row = self._con.execute("SELECT max(delivery) FROM loaded_batches WHERE run_id = ?", [run_id]).fetchone()
        return int(row[0] or 0)

    def segment_path(self, entry: LedgerEntry) -> Path:
        """The absolute path of a ledger entry's segment file (fetched from the durable HOLD₂
        first, if it has one and the file is not on this disk)."""
        return self._fetch_missing(entry.segment)

    def segment_bytes(self, run_id: str) -> int:
        """What a run's segment files hold, by their seals (files on this disk for older batches)."""
        return sum(
            entry.seal.size if entry.seal else _size_or_zero(self.layout.root / entry.segment)
            for entry in self.ledger(run_id)
            if entry.counters.rows_written
        )

    @property
    def mirror(self) -> HoldMirror | None:
        """The durable HOLD₂ this working copy belongs to (None: the hold dir is HOLD₂ itself)."""
        return self._mirror

    def remove_segments(self, run_id: str) -> None:
        """Delete a run's segment files (and its agent's answers), here and in the durable HOLD₂
        (cleanup, once it verified)."""
        if self._mirror is not None:
            self._mirror.delete([entry.segment for entry in self.ledger(run_id) if entry.counters.rows_written])
            self._mirror.delete(self._mirror.names(f"runs/{run_id}/agent/"))
        shutil.rmtree(self.layout.segments_dir(run_id), ignore_errors=True)


def _size_or_zero(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _new_keys(prepared: PreparedBatch) -> pl.DataFrame:
    """The keys a batch adds to the dedupe index, with their hashes (none without --key)."""
    if prepared.keys is None:
        return pl.DataFrame(schema={"key": pl.String, "key_hash": pl.UInt64})
    return pl.DataFrame({"key": prepared.keys, "key_hash": prepared.key_hashes})


def _row_hash_sum(rows: pl.DataFrame) -> int | None:
    """The sum of a batch's row hashes, as verification expects it (None: rows without hashes)."""
    return int(rows[ROW_HASH].sum()) if ROW_HASH in rows.columns else None


def _ledger_row(entry: LedgerEntry, row_hash_sum: int | None) -> list:
    """The values of a ledger row, in _LEDGER_COLUMNS order."""
    counters, end, source, seal = entry.counters, entry.end, entry.source, entry.seal
    return [
        entry.run_id,
        entry.batch,
        entry.segment,
        entry.quarantine,
        counters.rows_read,
        counters.rows_written,
        counters.rows_quarantined,
        counters.duplicates_skipped,
        end.file_index,
        end.offset,
        end.line,
        end.crc,
        entry.input_done,
        source.end.file_index if source else None,
        source.end.offset if source else None,
        source.end.line if source else None,
        source.end.crc if source else None,
        source.done if source else None,
        source.size if source else None,
        source.mtime_ns if source else None,
        seal.size if seal else None,
        seal.crc if seal else None,
        row_hash_sum,
        _now(),
    ]


def _ledger_entry(row: dict) -> LedgerEntry:
    """A ledger row (with its load id) as a LedgerEntry."""
    source = None
    if row["source_file"] is not None:
        source = SourceSpan(
            Position(row["source_file"], row["source_end"], row["source_line"], row["source_crc"]),
            row["source_done"],
            row["source_size"],
            row["source_mtime_ns"],
        )
    seal = SegmentSeal(row["segment_bytes"], row["segment_crc"]) if row["segment_bytes"] is not None else None
    return LedgerEntry(
        run_id=row["run_id"],
        batch=row["batch"],
        segment=row["segment"],
        quarantine=row["quarantine"],
        counters=Counters(row["rows_read"], row["rows_written"], row["rows_quarantined"], row["duplicates_skipped"]),
        end=Position(row["end_file"], row["end_offset"], row["end_line"], row["end_crc"] or 0),
        input_done=row["input_done"],
        load_id=row["load_id"],
        source=source,
        seal=seal,
    )
