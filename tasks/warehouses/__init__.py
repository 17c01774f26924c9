"""Open the warehouse a URL names."""

from __future__ import annotations

import gc
from collections.abc import Callable

from bqhold.tasks.core import retry
from bqhold.tasks.core.memory import LoadAllowance, critical_share, load_allowance, read_memory, release_free_memory
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.warehouse_url import WarehouseTarget
from bqhold.tasks.warehouses.base import Warehouse


def _load_allowance(options: JobOptions) -> LoadAllowance:
    """DuckDB's share of the run's memory budget, from what the process uses just before the load."""
    gc.collect()  # what staging left behind is not part of what the load has to fit beside
    release_free_memory()
    return load_allowance(read_memory(options.memory_limit_mb), critical_share(options.memory_threshold))


def open_warehouse(
    target: WarehouseTarget, options: JobOptions, stop_check: Callable[[str], None] = lambda where: None
) -> Warehouse:
    """A connected warehouse for `target` (imports only the client it needs); `stop_check(where)`
    raises Interrupted while a load waits, once a stop was requested."""
    if target.kind == "duckdb":
        from bqhold.tasks.warehouses.duckdb_warehouse import DuckDbWarehouse

        return DuckDbWarehouse(target.path, lambda: _load_allowance(options), text_columns=options.string_columns)
    from bqhold.tasks.warehouses.bigquery_dataset import BigQueryDataset
    from bqhold.tasks.warehouses.google_api import load_gcp_block, make_client

    credentials = None
    if options.gcp_credentials_block:  # loaded once, for BigQuery and the staging bucket
        from prefect_gcp import GcpCredentials

        credentials = load_gcp_block(GcpCredentials, options.gcp_credentials_block)
    retries = retry.RequestRetries(options.max_retries, retry.TIMING)  # TIMING read now: tests replace it
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
    )
    if options.string_columns and options.table:
        try:
            warehouse.check_text_columns(options.table, options.string_columns)
        except BaseException:
            warehouse.close()
            raise
    return warehouse
