"""Open what a URL names: the warehouse, HOLD₂ (with its durable copy in Cloud Storage, if any),
and HOLD₁ (local files, or objects in Cloud Storage)."""

from __future__ import annotations

import gc
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bqhold.tasks.core import retry
from bqhold.tasks.core.inputs import InputFile, resolve_inputs
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.lease import LeaseHolder
from bqhold.tasks.core.memory import LoadAllowance, critical_share, load_allowance, read_memory, release_free_memory
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.table_options import TableLayout, table_layout
from bqhold.tasks.core.warehouse_url import WarehouseTarget
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.warehouses.base import Warehouse

if TYPE_CHECKING:
    from prefect_gcp import GcpCredentials

    from bqhold.tasks.warehouses.gcs_source import GcsSource


def _load_allowance(options: JobOptions) -> LoadAllowance:
    """DuckDB's share of the run's memory budget, from what the process uses just before the load."""
    gc.collect()  # what staging left behind is not part of what the load has to fit beside
    release_free_memory()
    return load_allowance(read_memory(options.memory_limit_mb), critical_share(options.memory_threshold))


def _credentials(options: JobOptions) -> GcpCredentials | None:
    """The GcpCredentials block the options name (None: Application Default Credentials)."""
    if not options.gcp_credentials_block:
        return None
    from prefect_gcp import GcpCredentials

    from bqhold.tasks.warehouses.google_api import load_gcp_block

    return load_gcp_block(GcpCredentials, options.gcp_credentials_block)


def _request_retries(options: JobOptions) -> retry.RequestRetries:
    return retry.RequestRetries(options.max_retries, retry.TIMING)  # TIMING read now: tests replace it


def resolve_sources(spec: str, spool_dir: Path, options: JobOptions) -> tuple[InputFile, ...]:
    """The inputs `--input` names: local files, or objects in Cloud Storage (`gs://`, read with
    the options' credentials in this process from now on)."""
    if not spec.startswith("gs://"):
        return resolve_inputs(spec, spool_dir)
    return use_sources(options).resolve(spec, spool_dir)


def use_sources(options: JobOptions) -> GcsSource:
    """Make `gs://` inputs readable in this process (a command that reads a run's inputs again)."""
    from bqhold.tasks.warehouses.gcs_source import use_gcs_inputs

    return use_gcs_inputs(_credentials(options), _request_retries(options))


def open_hold(options: JobOptions, holder: str) -> HoldStore:
    """HOLD₂ in `--hold-dir`; with `--hold-url`, as the working copy of that durable HOLD₂, once
    its lease is this process's (`holder` says who this is to a run it refuses)."""
    layout = HoldLayout(options.hold_dir.resolve())
    if not options.hold_url:
        return HoldStore(layout)
    from bqhold.tasks.warehouses.gcs_hold import open_gcs_hold

    who = LeaseHolder(holder, socket.gethostname(), os.getpid())
    credentials, retries = _credentials(options), _request_retries(options)
    mirror = open_gcs_hold(options.hold_url, who, options.hold_lease_s, credentials, retries)
    return HoldStore(layout, mirror=mirror)


def open_warehouse(
    target: WarehouseTarget,
    options: JobOptions,
    stop_check: Callable[[str], None] = lambda where: None,
    layout: TableLayout | None = None,
) -> Warehouse:
    """A connected warehouse for `target` (imports only the client it needs); `stop_check(where)`
    raises Interrupted while a load waits, once a stop was requested; `layout`: how a new table is
    laid out (default: as --partition-by and --cluster-by say)."""
    layout = layout or table_layout(options.partition_by, options.cluster_by)
    if target.kind == "duckdb":
        from bqhold.tasks.warehouses.duckdb_warehouse import DuckDbWarehouse

        return DuckDbWarehouse(
            target.path, lambda: _load_allowance(options), text_columns=options.string_columns, layout=layout
        )
    from bqhold.tasks.warehouses.bigquery_dataset import BigQueryDataset
    from bqhold.tasks.warehouses.google_api import make_client

    credentials = _credentials(options)  # loaded once, for BigQuery and the staging bucket
    retries = _request_retries(options)
    staging = None
    if options.staging_bucket:
        from bqhold.tasks.warehouses.gcs_staging import open_staging

        staging = open_staging(options.staging_bucket, target.project, credentials, retries)
    warehouse = BigQueryDataset(
        make_client(target.project, options.location, credentials),
        target.project,
        target.dataset,
        add_columns=options.schema_update == "add",
        retries=retries,
        job_timeout_s=options.job_timeout_s,
        staging=staging,
        stop_check=stop_check,
        layout=layout,
    )
    if options.string_columns and options.table:
        try:
            warehouse.check_text_columns(options.table, options.string_columns)
        except BaseException:
            warehouse.close()
            raise
    return warehouse
