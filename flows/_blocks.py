"""Blocks named by a flow run's parameters, loaded at run time (never at import)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from tasks.core.errors import ConfigError
from tasks.core.options import JobOptions, default_table


def _load(block_class: type, name: str):
    try:
        return block_class.load(name)
    except ValueError as exc:
        raise ConfigError(f"no {block_class.get_block_type_name()} block named {name!r}: {exc}") from exc


def apply_blocks(
    options: JobOptions, table: str | None, bigquery_target: str | None, staging_area: str | None
) -> JobOptions:
    """`options` with what the named blocks set; an explicit table wins, then the block's, then
    one derived from the input's name."""
    from blocks import BigQueryTarget, StagingArea

    if staging_area:
        area = _load(StagingArea, staging_area)
        options = replace(
            options, hold_dir=Path(area.hold_dir), batch_size=area.batch_size, memory_limit_mb=area.memory_limit_mb
        )
    block_table = None
    if bigquery_target:
        target = _load(BigQueryTarget, bigquery_target)
        block_table = target.table
        options = replace(
            options,
            warehouse=target.warehouse_url(),
            location=target.location,
            gcp_credentials_block=target.credentials_block,
            schema_update=target.schema_update,
        )
    fallback = default_table(options.input) if options.input else ""
    return replace(options, table=table or block_table or options.table or fallback)
