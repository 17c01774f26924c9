"""Blocks named by a flow run's parameters, loaded at run time (never at import), and the
pieces every bqhold flow shares around them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from prefect.client.schemas.objects import State
from prefect.states import Cancelled, Failed

from bqhold.tasks.core.errors import BqholdError, Interrupted, without_tracebacks
from bqhold.tasks.core.options import JobOptions, default_table, validate


def apply_blocks(options: JobOptions, bigquery_target: str | None, staging_area: str | None) -> JobOptions:
    """`options` with what the named blocks set. A value given explicitly wins over the block's
    where "not given" can be told apart (table, location, credentials, memory budget, staging
    bucket); the hold dir, batch size, warehouse and schema update come from the block. A table
    named nowhere is derived from the input's name."""
    from bqhold.blocks import BigQueryTarget, StagingArea, load_block

    if staging_area:
        area = load_block(StagingArea, staging_area)
        options = replace(
            options,
            hold_dir=Path(area.hold_dir),
            batch_size=area.batch_size,
            memory_limit_mb=options.memory_limit_mb or area.memory_limit_mb,
        )
    if bigquery_target:
        target = load_block(BigQueryTarget, bigquery_target)
        options = replace(
            options,
            table=options.table or target.table or "",
            warehouse=target.warehouse_url(),
            location=options.location or target.location,
            gcp_credentials_block=options.gcp_credentials_block or target.credentials_block,
            schema_update=target.schema_update,
            staging_bucket=options.staging_bucket or target.staging_bucket,
        )
    fallback = default_table(options.input) if options.input else ""
    return replace(options, table=options.table or fallback)


def final_state(error: BqholdError) -> State:
    """The flow run's final state for an error bqhold raised on purpose: Cancelled after a stop
    signal, else Failed — with the one-line message, and no traceback pinning frames."""
    state = Cancelled if isinstance(error, Interrupted) else Failed
    return state(message=str(error), data=without_tracebacks(error))


def existing_run_options(
    *,
    hold_dir: str,
    warehouse: str | None,
    table: str | None = None,
    bigquery_target: str | None,
    staging_area: str | None,
    gcp_credentials_block: str | None,
    location: str | None,
    max_retries: int,
    staging_bucket: str | None = None,
) -> JobOptions:
    """Options for flows that work on runs already in HOLD₂ (no input; warehouse optional)."""
    options = JobOptions(
        input="",
        table=table or "",
        hold_dir=Path(hold_dir),
        warehouse=warehouse or "",
        max_retries=max_retries,
        gcp_credentials_block=gcp_credentials_block,
        location=location,
        staging_bucket=staging_bucket,
    )
    return validate(apply_blocks(options, bigquery_target, staging_area))
