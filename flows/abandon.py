"""Abandon: give a run up for good — its rows leave the warehouse, its files and keys stop counting.

The way out when a run can never be delivered as it is: a file it delivered must be replaced by
a new version, its segments were cleaned up and then its table was lost, or it was staged from a
file that has changed since. Afterwards, re-running the job's command stages that run's files
again from HOLD₁ (where they still exist), exactly once. The run's files in HOLD₂ stay on disk
(only `cleanup` removes data), and a run that others rely on (they skipped records as duplicates
of its keys) is refused, since abandoning it would lose those records.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from bqhold.flows._blocks import flow_outcome, with_blocks
from bqhold.flows._hold import hold_for
from bqhold.flows._logging import flow_logging
from bqhold.flows._parameters import ON_RUN_DEFAULTS, takes_options
from bqhold.flows._pipelines import find_command
from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import ConfigError, ResumeRefused, StateError
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.warehouses import open_warehouse


def _remove_from_warehouse(options: JobOptions, run_id: str, table: str, warehouse_url: str) -> int:
    """Delete every row of the run from its table; return how many there were (the warehouse's count)."""
    warehouse = open_warehouse(parse_warehouse(warehouse_url), options)
    try:
        present = warehouse.fingerprints(table, run_id)
        if present:
            warehouse.remove(table, run_id, keep=[])
        left = warehouse.fingerprints(table, run_id)
    finally:
        warehouse.close()
    if left:
        rows = sum(held.rows for held in left.values())
        raise StateError(f"{rows:,} rows of run {run_id} are still in {table}; re-run abandon")
    return sum(held.rows for held in present.values())


def abandon_run(options: JobOptions, run_id: str) -> dict[str, Any]:
    """Take a run's rows out of the warehouse, then mark it abandoned and release its dedupe keys."""
    logger = get_run_logger()
    with hold_for(options, "abandon") as store:
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id} in {options.hold_dir}")
        table = options.table or run.job.table
        warehouse_url = options.warehouse or run.job.warehouse
        if run.status is Phase.ABANDONED:
            return {"run_id": run_id, "status": "abandoned", "rows_removed": 0, "message": "already abandoned"}
        dependents = store.dependents(run_id)
        if dependents:
            raise ResumeRefused(
                f"run(s) {', '.join(dependents)} skipped records as duplicates of run {run_id}'s; abandoning it "
                f"would lose them: abandon those runs first (`{run_command('abandon', 'RUN', options.hold_dir)}`)"
            )
        removed = 0
        if run.status is not Phase.STAGING:  # it may have loaded rows (a run stages fully before loading)
            removed = _remove_from_warehouse(options, run_id, table, warehouse_url)
        store.set_phase(run_id, Phase.ABANDONED, f"abandoned on request; {removed:,} rows removed from {table}")
    message = (
        f"run {run_id} abandoned: {removed:,} rows removed from {table}; its files and dedupe keys no longer count. "
        "Re-run the job's command to stage its files again from HOLD₁"
    )
    logger.info(message)
    return {
        "run_id": run_id,
        "status": "abandoned",
        "warehouse": parse_warehouse(warehouse_url).display(),
        "table": table,
        "rows_removed": removed,
        "message": message,
    }


@flow(name="bqhold-abandon", log_prints=True, validate_parameters=True)
@takes_options(find_command("abandon").options, defaults=ON_RUN_DEFAULTS)
def abandon_flow(run_id: str, options: JobOptions) -> dict[str, Any]:
    """Give a run up: remove its rows from the warehouse so its files can be staged again from HOLD₁."""
    flow_logging()
    return flow_outcome(lambda: abandon_run(with_blocks(options), run_id))
