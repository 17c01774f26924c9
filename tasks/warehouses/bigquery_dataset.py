"""BigQuery: load jobs with deterministic ids read HOLD₂'s files; counts come from BigQuery itself.

Exactly once per group: the job id follows from (hold, run, batches, delivery, attempt), and
before anything is sent the job under that id is looked up. A job found there (or met as 409
Conflict when a submission's answer was lost) is checked to be this group's load — its table,
its `bqhold_hold` label, and its rows once done — and its outcome used: the data is never sent
as a second job, and never two jobs of one group run at once. A job that failed in an earlier
process is a spent attempt (the next number is tried); one that failed here is tried again
under the next number when the reason is transient, and a permanent failure stops the run with
BigQuery's reason (tasks/core/load_jobs.py decides). A job still running after
`job_timeout_s` is cancelled and waited for; a stop signal is honoured between polls. Every
call is retried only for errors the classification table calls transient, by the layers
tasks/core/retry.py names: the request layer around each call, the upload layer inside an
upload, and the job layer here.

Files reach BigQuery one of two ways: streamed from this machine as one resumable upload per
group (the default), or, with a staging bucket, uploaded to Cloud Storage first and loaded by
URI — the way for large runs in the cloud: the load job reads the bucket, and a job retried
under the next attempt reads the same objects without sending the data again.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from google.cloud import bigquery

from bqhold.tasks.core import faults
from bqhold.tasks.core.column_types import ArrayType, ColumnType, FieldType, RecordType, Schema, only_adds_fields
from bqhold.tasks.core.duckdb_types import identifier
from bqhold.tasks.core.errors import (
    ConfigError,
    LoadJobStuck,
    WarehouseConflict,
    WarehouseNotFound,
    WarehouseRejected,
    WarehouseUnavailable,
)
from bqhold.tasks.core.load_jobs import HOLD_LABEL, JobSeen, Step, after, not_this_groups
from bqhold.tasks.core.load_plan import DEFAULT_MAX_GROUP_BYTES, LoadGroup, job_id_for
from bqhold.tasks.core.retry import LOAD_JOB, RequestRetries
from bqhold.tasks.core.schema import too_large_to_widen
from bqhold.tasks.core.segment_files import is_parquet, one_parquet
from bqhold.tasks.core.staging import META_COLUMNS, ROW_HASH, RUN_COLUMNS
from bqhold.tasks.core.table_options import Partitioning, TableLayout, check_layout, layout_problem
from bqhold.tasks.core.text_values import MAX_EXACT_FLOAT_INT
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.core.write_modes import WriteMode
from bqhold.tasks.storage.segment_stream import ConcatenatedFiles
from bqhold.tasks.warehouses.google_api import call_with_retries, upload_session_lost

if TYPE_CHECKING:
    from bqhold.tasks.warehouses.gcs_staging import GcsStaging

T = TypeVar("T")
# BigQuery's legacy names of the staged types (the API answers with either).
_SAME_TYPE = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRUCT": "RECORD"}
_SCALAR_NAMES = frozenset(kind.value for kind in ColumnType)
# A column type BigQuery has and bqhold does not stage (NUMERIC, DATETIME, ...), by its name.
Foreign = str
# Load jobs one process submits for one group (spent attempts of earlier runs aside); the job
# layer's count is fixed, whatever --max-retries says.
_MAX_JOB_ATTEMPTS = LOAD_JOB.attempts(max_retries=0)
_POLL_S = 1.0
_MAX_CANCEL_WAIT_S = 300.0  # how long a cancelled job may take to reach DONE (at most the job timeout)
logger = logging.getLogger("bqhold.bigquery")


def bigquery_field(name: str, kind: FieldType, description: str | None = None) -> bigquery.SchemaField:
    """The BigQuery field of a staged column: an array is a REPEATED field of its items' type, a
    record a RECORD of its fields; everything else NULLABLE."""
    if isinstance(kind, ArrayType):
        item = bigquery_field(name, kind.item)
        return bigquery.SchemaField(name, item.field_type, "REPEATED", description=description, fields=item.fields)
    if isinstance(kind, RecordType):
        fields = [bigquery_field(inner, inner_kind) for inner, inner_kind in kind.fields]
        return bigquery.SchemaField(name, "RECORD", "NULLABLE", description=description, fields=fields)
    return bigquery.SchemaField(name, kind.value, "NULLABLE", description=description)


def bigquery_schema(schema: Schema, descriptions: dict[str, str] | None = None) -> list[bigquery.SchemaField]:
    """BigQuery fields for a staged schema (with the pipeline's descriptions of its columns)."""
    return [bigquery_field(name, kind, (descriptions or {}).get(name)) for name, kind in schema.items()]


def field_type_of(field: bigquery.SchemaField) -> FieldType | Foreign:
    """The staged type a BigQuery field has (its type's name when bqhold stages none such)."""
    name = _SAME_TYPE.get(field.field_type, field.field_type)
    if name == "RECORD":
        inner: FieldType | Foreign = RecordType(tuple((sub.name.lower(), field_type_of(sub)) for sub in field.fields))
    else:
        inner = ColumnType(name) if name in _SCALAR_NAMES else name
    if field.mode != "REPEATED":
        return inner
    return ArrayType(inner) if isinstance(inner, (ColumnType, RecordType)) else f"ARRAY<{inner}>"


def _spelled(kind: FieldType | Foreign) -> str:
    return kind.value if isinstance(kind, (ColumnType, ArrayType, RecordType)) else kind


class BigQueryDataset:
    """Delivery into one BigQuery dataset."""

    def __init__(
        self,
        client: bigquery.Client,
        project: str,
        dataset: str,
        *,
        add_columns: bool = True,
        retries: RequestRetries,
        job_timeout_s: float,
        sleep: Callable[[float], None] = time.sleep,
        staging: GcsStaging | None = None,
        stop_check: Callable[[str], None] = lambda where: None,
        layout: TableLayout | None = None,
    ) -> None:
        """`stop_check(where)` raises Interrupted when a stop was requested (called between polls);
        `layout`: how a new table is partitioned, clustered and described (an existing one is checked)."""
        self.client, self.project, self.dataset = client, project, dataset
        self.layout = layout or TableLayout()
        self.staging = staging
        # Few jobs (~1,500 per table per day allowed): one upload per group, streamed in 16 MiB
        # chunks, or one job reading many staged objects.
        self.max_group_bytes = staging.max_group_bytes if staging else DEFAULT_MAX_GROUP_BYTES
        self.add_columns = add_columns  # also allows widening INT64 to FLOAT64 (--schema-update add)
        self.policy, self.upload_retries = retries.policy, retries.upload_retries
        self.request_timeout_s, self.job_timeout_s, self.sleep = retries.request_timeout_s, job_timeout_s, sleep
        self.stop_check = stop_check
        self._submitted: set[str] = set()  # job ids this process sent
        self._submissions: Counter[tuple[str, int]] = Counter()  # jobs sent per (load id, delivery)

    def describe(self) -> str:
        """The dataset, as a warehouse URL."""
        return f"bigquery://{self.project}/{self.dataset}"

    def _table_id(self, table: str) -> str:
        identifier(table)  # validated before it reaches any request or SQL
        return f"{self.project}.{self.dataset}.{table}"

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        """Run one API call, retrying transient failures; translate what remains."""
        return call_with_retries(call, doing, self.policy, self.sleep)

    # -- table --------------------------------------------------------------------------

    def _get_table(self, table_id: str) -> bigquery.Table:
        return self._call(
            f"reading table {table_id}",
            lambda: self.client.get_table(table_id, retry=None, timeout=self.request_timeout_s),
        )

    def _new_table(self, table_id: str, schema: Schema) -> bigquery.Table:
        """The table to create: its columns (described), partitioning, clustering and description."""
        layout = self.layout
        created = bigquery.Table(table_id, schema=bigquery_schema(schema, layout.column_descriptions))
        part = layout.partitioning
        if part is not None and part.unit is None:
            bounds = bigquery.PartitionRange(start=part.start, end=part.end, interval=part.interval)
            created.range_partitioning = bigquery.RangePartitioning(field=part.column, range_=bounds)
        elif part is not None:
            created.time_partitioning = bigquery.TimePartitioning(type_=part.unit, field=part.column)
        created.clustering_fields = list(layout.clustering) or None
        created.description = layout.description
        return created

    @staticmethod
    def _layout_of(table: bigquery.Table) -> TableLayout:
        """The partitioning and clustering an existing table has."""
        part = None
        if table.range_partitioning is not None:
            bounds = table.range_partitioning.range_
            part = Partitioning(table.range_partitioning.field, None, bounds.start, bounds.end, bounds.interval)
        elif table.time_partitioning is not None:
            part = Partitioning(table.time_partitioning.field, table.time_partitioning.type_)
        return TableLayout(part, tuple(table.clustering_fields or ()))

    def _ensure_table(self, table: str, schema: Schema) -> bool:
        """Create the table if missing (as `layout` says), else check its layout and columns;
        return True when the load must add columns (or fields to records)."""
        table_id = self._table_id(table)
        check_layout(self.layout, schema, table)
        try:
            existing = self._get_table(table_id)
        except WarehouseNotFound:
            created = self._new_table(table_id, schema)
            self._call(
                f"creating table {table_id}",
                lambda: self.client.create_table(created, exists_ok=True, retry=None, timeout=self.request_timeout_s),
            )
            return False
        problem = layout_problem(self.layout, self._layout_of(existing), table_id)
        if problem:
            raise ConfigError(problem)
        present = self._column_types(existing)
        grown = []  # records that gain fields: the load adds them
        for name, kind in schema.items():
            if name in present and present[name] != kind:
                if isinstance(present[name], (ArrayType, RecordType)) and only_adds_fields(present[name], kind):
                    grown.append(name)
                else:
                    self._widen(table_id, name, present[name], kind)
        missing = [name for name in schema if name not in present] + grown
        refused = [name for name in missing if name not in META_COLUMNS]  # bqhold's own are always added
        if refused and not self.add_columns:
            raise ConfigError(
                f"table {table_id} lacks column(s) {', '.join(refused)}; add them, or allow it with --schema-update add"
            )
        return bool(missing)

    @staticmethod
    def _column_types(table: bigquery.Table) -> dict[str, FieldType | Foreign]:
        """Each column's type, as staged types are (by name when bqhold stages none such)."""
        return {field.name.lower(): field_type_of(field) for field in table.schema}

    @staticmethod
    def _cannot_change(table_id: str, column: str, old: FieldType | Foreign, new: FieldType) -> WarehouseRejected:
        was, now = _spelled(old), new.value
        return WarehouseRejected(
            f"table {table_id} has column {column} as {was}, HOLD₂ stages it as {now}, and BigQuery "
            f"cannot change {was} to {now}: load into another table with --table, or recreate the "
            f"column yourself (CAST({column} AS {now}))"
        )

    def check_text_columns(self, table: str, columns: frozenset[str]) -> None:
        """Refuse --string-columns for columns the table has with a type BigQuery cannot turn into
        STRING, before anything is staged (HOLD₂ would widen, and its data could never load)."""
        table_id = self._table_id(table)
        try:
            existing = self._call(
                f"reading table {table_id}",
                lambda: self.client.get_table(table_id, retry=None, timeout=self.request_timeout_s),
            )
        except WarehouseNotFound:
            return
        for column, kind in self._column_types(existing).items():
            if column in columns and kind is not ColumnType.STRING:
                raise self._cannot_change(table_id, column, kind, ColumnType.STRING)

    def _widen(self, table_id: str, column: str, old: FieldType | Foreign, new: FieldType) -> None:
        """INT64 -> FLOAT64 (the one change BigQuery makes in place, checked to round no value)."""
        if (old, new) != (ColumnType.INT64, ColumnType.FLOAT64):
            raise self._cannot_change(table_id, column, old, new)
        if not self.add_columns:
            raise ConfigError(
                f"table {table_id} has column {column} as INT64, HOLD₂ now stages it as FLOAT64; "
                "widen it yourself (ALTER COLUMN ... SET DATA TYPE FLOAT64), or allow it with --schema-update add"
            )
        config = bigquery.QueryJobConfig(
            query_parameters=[bigquery.ScalarQueryParameter("max", "INT64", MAX_EXACT_FLOAT_INT)]
        )
        beyond = self._query_one(
            f"checking column {column} of {table_id}",
            f"SELECT COUNT(*) AS n FROM `{table_id}` WHERE `{column}` > @max OR `{column}` < -@max",
            config,
        )
        if beyond:
            raise WarehouseRejected(too_large_to_widen(f"table {table_id}", column, beyond))
        self._query_one(
            f"widening column {column} of {table_id}",
            f"ALTER TABLE `{table_id}` ALTER COLUMN `{column}` SET DATA TYPE FLOAT64",
            bigquery.QueryJobConfig(),
        )
        logger.warning("column %r of table %s widened from INT64 to FLOAT64", column, table_id)

    def _query_one(self, doing: str, sql: str, config: bigquery.QueryJobConfig) -> int | None:
        """Run a query and return the first column of its first row (None if it returns none)."""

        def query() -> int | None:
            rows = self.client.query(sql, job_config=config, retry=None, timeout=self.request_timeout_s).result(
                retry=None, timeout=self.request_timeout_s
            )
            return next((row[0] for row in rows), None)

        return self._call(doing, query)

    # -- load ---------------------------------------------------------------------------

    def load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], delivery: int = 0) -> int:
        """Load a group's segments as one job (or take the outcome of the job that already did)."""
        config = self._load_config(schema, group, add_columns=self._ensure_table(table, schema))
        if not is_parquet(files):
            return self._load_files(table, group, files, config, delivery)
        config.source_format = bigquery.SourceFormat.PARQUET
        parquet = bigquery.ParquetOptions()
        parquet.enable_list_inference = True  # a Parquet LIST is a REPEATED column, not a RECORD of `list.element`
        config.parquet_options = parquet
        # The group's Parquet segments as one file with every column (named by the group, so
        # the staging bucket's object is found again by a retry); removed once the load is done.
        merged = files[0].with_name(f"load-{group.load_id}.parquet")
        try:
            return self._load_files(table, group, [one_parquet(files, schema, merged)], config, delivery)
        finally:
            merged.unlink(missing_ok=True)

    def _load_files(
        self, table: str, group: LoadGroup, files: list[Path], config: bigquery.LoadJobConfig, delivery: int
    ) -> int:
        """Load `files` as the group's one job, attempt after attempt until one loads or none may."""
        attempt = 0
        while True:
            job_id = job_id_for(group, delivery, attempt)
            self.stop_check(f"before load job {job_id}")
            job = self._existing_job(job_id) or self._submit(job_id, table, group, files, config, delivery)
            mine = job_id in self._submitted
            if not mine:
                self._check_found(job, table, group)  # before waiting on (or cancelling) a stranger's job
            self._wait(job)
            if not mine:
                self._check_found(job, table, group)
            seen = _seen(job)
            step = after(seen, mine)
            if step is Step.USE:
                if self.staging:
                    self.staging.remove(group.hold_id, group.run_id, files)
                return int(job.output_rows or 0)
            self._stop_if_final(step, seen, job.state)
            logger.warning(
                "BigQuery load job %s failed%s: %s (%s); trying attempt %d",
                job_id,
                "" if mine else " in an earlier run",
                seen.error_reason,
                seen.error_message,
                attempt + 1,
            )
            attempt += 1

    def _load_config(self, schema: Schema, group: LoadGroup, add_columns: bool) -> bigquery.LoadJobConfig:
        config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON,
            schema=bigquery_schema(schema, self.layout.column_descriptions),  # kept as the table has them
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            create_disposition=bigquery.CreateDisposition.CREATE_NEVER,
            max_bad_records=0,
            ignore_unknown_values=False,
            labels={"bqhold": "load", HOLD_LABEL: group.hold_id},
        )
        if add_columns:
            config.schema_update_options = [bigquery.SchemaUpdateOption.ALLOW_FIELD_ADDITION]
        return config

    def _stop_if_final(self, step: Step, seen: JobSeen, state: str) -> None:
        """Raise what ends the load after a job that neither loaded nor leaves another attempt."""
        if step is Step.STUCK:
            raise LoadJobStuck(
                f"BigQuery load job {seen.job_id} is still {state} after --job-timeout-s {self.job_timeout_s:g} "
                "and a cancel; re-run the same command to resume: it waits for that job again"
            )
        if step is Step.REJECTED:
            raise WarehouseRejected(
                f"BigQuery load job {seen.job_id} failed: {seen.error_reason} ({seen.error_message}); fix what it "
                "names (the table's schema or the data), then re-run the same command: it starts a new load job"
            )

    def _check_found(self, job: bigquery.LoadJob, table: str, group: LoadGroup) -> None:
        """A job found under one of this group's ids must be its load, else a permanent error naming it."""
        why = not_this_groups(_seen(job), self._table_id(table), group.hold_id, group.rows)
        if why is not None:
            raise WarehouseRejected(
                f"BigQuery job {job.job_id} is not the load of {group.load_id}: {why}. Was this hold dir copied "
                "from another? Copies share job ids: deliver from one copy only"
            )

    def _submit(
        self,
        job_id: str,
        table: str,
        group: LoadGroup,
        files: list[Path],
        config: bigquery.LoadJobConfig,
        delivery: int,
    ) -> bigquery.LoadJob:
        """Send the group as a new load job under `job_id` (at most _MAX_JOB_ATTEMPTS per process)."""
        sent = self._submissions[(group.load_id, delivery)]
        if sent >= _MAX_JOB_ATTEMPTS:
            raise WarehouseUnavailable(
                f"BigQuery load of {group.load_id}: {sent} load jobs failed in this run; re-run to resume"
            )
        self._submissions[(group.load_id, delivery)] += 1
        self._submitted.add(job_id)
        table_id = self._table_id(table)
        if self.staging is None:
            return self._submit_or_attach(job_id, lambda: self._upload_job(job_id, table_id, files, config))
        uris = self.staging.stage(group.hold_id, group.run_id, files)
        faults.reached("bucket_staged", group.batches[-1])
        return self._submit_or_attach(
            job_id,
            lambda: self.client.load_table_from_uri(
                uris, table_id, job_id=job_id, job_config=config, retry=None, timeout=self.request_timeout_s
            ),
        )

    def _upload_job(
        self, job_id: str, table_id: str, files: list[Path], config: bigquery.LoadJobConfig
    ) -> bigquery.LoadJob:
        """Stream the files as one resumable upload that creates the job."""
        with ConcatenatedFiles(files) as stream:
            # The upload layer: google-resumable-media retries each piece (it resumes a piece
            # instead of resending the whole group); the job id makes any retry safe.
            try:
                return self.client.load_table_from_file(
                    stream,
                    table_id,
                    rewind=True,
                    size=stream.size,
                    num_retries=self.upload_retries,
                    job_id=job_id,
                    job_config=config,
                    timeout=self.request_timeout_s,
                )
            except Exception as exc:
                if upload_session_lost(exc):
                    # Start a new upload under the same job id: 409 if the job exists.
                    raise WarehouseUnavailable(f"upload for job {job_id} lost its session") from exc
                raise

    def _submit_or_attach(self, job_id: str, submit: Callable[[], bigquery.LoadJob]) -> bigquery.LoadJob:
        try:
            return self._call(f"submitting load job {job_id}", submit)
        except WarehouseConflict:
            # 409: this job id exists — an earlier try got through even if its answer was lost.
            return self._get_job(job_id)

    def _get_job(self, job_id: str) -> bigquery.LoadJob:
        return self._call(
            f"fetching load job {job_id}",
            lambda: self.client.get_job(job_id, project=self.project, retry=None, timeout=self.request_timeout_s),
        )

    def _existing_job(self, job_id: str) -> bigquery.LoadJob | None:
        try:
            return self._get_job(job_id)
        except WarehouseNotFound:
            return None

    def _wait(self, job: bigquery.LoadJob) -> None:
        """Wait for the job to end; past the job timeout, cancel it and wait (a bounded while) for its end."""
        if self._poll(job, self.job_timeout_s):
            return
        logger.warning(
            "BigQuery load job %s still %s after --job-timeout-s %g: cancelling it",
            job.job_id,
            job.state,
            self.job_timeout_s,
        )
        self._call(
            f"cancelling load job {job.job_id}",
            lambda: self.client.cancel_job(
                job.job_id, project=self.project, location=job.location, retry=None, timeout=self.request_timeout_s
            ),
        )
        self._poll(job, min(self.job_timeout_s, _MAX_CANCEL_WAIT_S))

    def _poll(self, job: bigquery.LoadJob, seconds: float) -> bool:
        """Poll until the job is DONE (True) or `seconds` have passed (False); a stop request ends it."""
        deadline = time.monotonic() + seconds
        while job.state != "DONE":
            # The job goes on without us: a re-run finds it under its id and takes its outcome.
            self.stop_check(f"while waiting for BigQuery load job {job.job_id}")
            if time.monotonic() >= deadline:
                return False
            self.sleep(_POLL_S)
            self._call(f"polling load job {job.job_id}", lambda: job.reload(retry=None, timeout=self.request_timeout_s))
        return True

    # -- verify and repair --------------------------------------------------------------

    def fingerprints(self, table: str, run_id: str) -> dict[int | None, Fingerprint]:
        """BigQuery's own row count and SUM(_row_hash) per batch of `run_id` (parameterised query)."""
        table_id = self._table_id(table)
        try:
            existing = self._get_table(table_id)
        except WarehouseNotFound:
            return {}
        columns = {field.name for field in existing.schema}
        if not columns >= RUN_COLUMNS:
            return {}  # a table bqhold has not loaded yet (it adds its columns with the first load)
        # Tables loaded before row hashes existed lack the column: their batches are counted only.
        total = f"SUM({ROW_HASH})" if ROW_HASH in columns else "CAST(NULL AS INT64)"
        config = bigquery.QueryJobConfig(query_parameters=[bigquery.ScalarQueryParameter("run_id", "STRING", run_id)])
        sql = f"SELECT _batch, COUNT(*) AS n, {total} AS h FROM `{table_id}` WHERE _run_id = @run_id GROUP BY _batch"

        def query() -> dict[int | None, Fingerprint]:
            rows = self.client.query(sql, job_config=config, retry=None, timeout=self.request_timeout_s).result(
                retry=None, timeout=self.request_timeout_s
            )
            return {
                None if row["_batch"] is None else int(row["_batch"]): Fingerprint(
                    int(row["n"]), None if row["h"] is None else int(row["h"])
                )
                for row in rows
            }

        try:
            return self._call(f"counting rows of run {run_id} in {table_id}", query)
        except WarehouseNotFound:
            return {}

    def remove(self, table: str, run_id: str, keep: list[int]) -> None:
        """Delete the run's rows outside the batches in `keep`, and those without a batch."""
        table_id = self._table_id(table)
        config = bigquery.QueryJobConfig(
            query_parameters=[
                bigquery.ScalarQueryParameter("run_id", "STRING", run_id),
                bigquery.ArrayQueryParameter("keep", "INT64", keep),
            ]
        )
        sql = f"DELETE FROM `{table_id}` WHERE _run_id = @run_id AND (_batch IS NULL OR _batch NOT IN UNNEST(@keep))"
        try:
            self._call(
                f"removing rows of run {run_id} from {table_id}",
                lambda: self.client.query(sql, job_config=config, retry=None, timeout=self.request_timeout_s).result(
                    retry=None, timeout=self.request_timeout_s
                ),
            )
        except WarehouseNotFound:
            pass  # no table, no rows: the load that follows creates it (a missing dataset is named there)

    # -- merge and replace ---------------------------------------------------------------

    def _statement(self, doing: str, sql: str) -> None:
        """Run one DML statement or script to its end (a job of up to --job-timeout-s); each is
        idempotent, so a try whose answer was lost may run it again."""

        def run() -> None:
            job = self.client.query(sql, retry=None, timeout=self.request_timeout_s)
            job.result(retry=None, timeout=self.job_timeout_s)

        self._call(doing, run)

    def _add_missing_columns(self, table_id: str, schema: Schema) -> None:
        """Give the table the staged columns it lacks (and records their new fields), NULL in its
        rows, as a load with ALLOW_FIELD_ADDITION would."""
        existing = self._get_table(table_id)
        wanted = {field.name: field for field in bigquery_schema(schema)}
        kept = [
            wanted[field.name.lower()]
            if field.field_type in ("RECORD", "STRUCT") and field.name.lower() in wanted
            else field
            for field in existing.schema
        ]
        present = {field.name.lower() for field in existing.schema}
        existing.schema = kept + [field for name, field in wanted.items() if name not in present]
        self._call(
            f"adding columns to {table_id}",
            lambda: self.client.update_table(existing, ["schema"], retry=None, timeout=self.request_timeout_s),
        )

    def publish(self, mode: WriteMode, table: str, staging: str, schema: Schema, key: tuple[str, ...] | None) -> None:
        """Make `table` hold the verified rows of `staging` by `mode`: merge (one MERGE on the key:
        rows of keys the table has are updated, the others inserted) or replace (a copy job
        truncating the table: atomic, the table keeps its partitioning and clustering). Both are
        idempotent."""
        table_id, staging_id = self._table_id(table), self._table_id(staging)
        if self._ensure_table(table, schema):
            self._add_missing_columns(table_id, schema)
        if mode == "replace":
            config = bigquery.CopyJobConfig(write_disposition=bigquery.WriteDisposition.WRITE_TRUNCATE)

            def copy() -> None:
                job = self.client.copy_table(staging_id, table_id, job_config=config, retry=None)
                job.result(retry=None, timeout=self.job_timeout_s)

            self._call(f"replacing {table_id} by {staging_id}", copy)
            return
        assert key is not None
        matched = ".".join(f"`{part}`" for part in key)
        columns = [f"`{name}`" for name in schema]
        sql = (
            f"MERGE `{table_id}` T USING (SELECT * FROM `{staging_id}` WHERE TRUE "
            f"QUALIFY ROW_NUMBER() OVER (PARTITION BY {matched} ORDER BY _batch DESC) = 1) S "
            f"ON T.{matched} = S.{matched} "
            f"WHEN MATCHED THEN UPDATE SET {', '.join(f'{c} = S.{c}' for c in columns)} "
            f"WHEN NOT MATCHED THEN INSERT ({', '.join(columns)}) VALUES ({', '.join(f'S.{c}' for c in columns)})"
        )
        self._statement(f"merging {staging_id} into {table_id}", sql)

    def table_counts(self, table: str, key: tuple[str, ...] | None = None) -> tuple[int, int | None]:
        """The table's rows, and its distinct keys (None without `key`)."""
        distinct = f"COUNT(DISTINCT {'.'.join(f'`{part}`' for part in key)})" if key else "NULL"
        table_id = self._table_id(table)

        def count() -> tuple[int, int | None]:
            sql = f"SELECT COUNT(*) AS n, {distinct} AS d FROM `{table_id}`"
            row = next(iter(self.client.query(sql, retry=None, timeout=self.request_timeout_s).result(retry=None)))
            return int(row["n"]), None if row["d"] is None else int(row["d"])

        return self._call(f"counting rows of {table_id}", count)

    def drop(self, table: str) -> None:
        """Drop `table` (a run's staging table, once the run is delivered); none is fine."""
        table_id = self._table_id(table)
        self._call(
            f"dropping {table_id}",
            lambda: self.client.delete_table(table_id, not_found_ok=True, retry=None, timeout=self.request_timeout_s),
        )

    def close(self) -> None:
        """Close the client's HTTP session."""
        self.client.close()


def _seen(job: bigquery.LoadJob) -> JobSeen:
    """What tasks/core/load_jobs.py needs to know of a job."""
    table = getattr(job, "destination", None)
    error = job.error_result
    return JobSeen(
        job_id=job.job_id,
        destination=f"{table.project}.{table.dataset_id}.{table.table_id}" if table else "",
        hold_label=(job.labels or {}).get(HOLD_LABEL),
        done=job.state == "DONE",
        error_reason=(error.get("reason") or "unknown") if error else None,
        error_message=error.get("message", "") if error else "",
        output_rows=getattr(job, "output_rows", None),
    )
