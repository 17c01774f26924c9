"""Redeliver: load an existing HOLD₂ run into the warehouse again and verify it — no source needed.

For after a warehouse outage, a load into the wrong dataset, or a table someone truncated or
dropped. Only the batches whose rows differ (count or content) are touched: their rows are
removed from the warehouse and loaded again from HOLD₂'s files as a new delivery (new job ids);
rows under the run's id that belong to no batch of it are removed; then everything is verified.
A missing table is created as a load creates it. A run that verifies already is left alone.
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
from bqhold.tasks.core.errors import ConfigError, VerificationFailed
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.core.write_modes import through_staging
from bqhold.tasks.load import redeliver_batches, verify_run
from bqhold.tasks.warehouses import open_warehouse


def redeliver_run(options: JobOptions, run_id: str) -> dict[str, Any]:
    """Verify a staged run in the warehouse and reload the batches that do not match."""
    logger = get_run_logger()
    with hold_for(options, "redeliver") as store:
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id} in {options.hold_dir}")
        if run.status is Phase.CLEANED:
            raise ConfigError(
                f"run {run_id}'s HOLD₂ segments were cleaned up, so it cannot be redelivered; to load its files "
                f"again from HOLD₁, run `{run_command('abandon', run_id, options.hold_dir)}`, then re-run its job"
            )
        ledger = store.ledger(run_id)
        if run.status is Phase.ABANDONED:
            raise ConfigError(f"run {run_id} was abandoned; re-run its job to stage its files again")
        if not ledger or not ledger[-1].input_done:
            raise ConfigError(f"run {run_id} is not fully staged; resume it with the main command first")
        if through_staging(run.job.write_mode):  # its rows may since have been updated or replaced
            raise ConfigError(
                f"run {run_id} was delivered with --write-mode {run.job.write_mode}: reloading its batches could bring "
                f"back rows later runs updated; to load its files again, run "
                f"`{run_command('abandon', run_id, options.hold_dir)}`, then re-run its job"
            )
        table = options.table or run.job.table
        target = parse_warehouse(options.warehouse or run.job.warehouse)
        warehouse = open_warehouse(target, options)
        try:
            before = verify_run(store, warehouse, table, run_id)
            redone = before.mismatched_batches
            if not before.ok:
                logger.info("run %s: %s", run_id, before.describe())
                logger.info("run %s: redelivering %d batch(es) to %s", run_id, len(redone), warehouse.describe())
                redeliver_batches(store, warehouse, table, run_id, before)
            after = verify_run(store, warehouse, table, run_id) if not before.ok else before
            store.set_phase(run_id, Phase.DELIVERED if after.ok else Phase.UNVERIFIED, after.describe())
        finally:
            warehouse.close()
    if not after.ok:
        raise VerificationFailed(after.describe())
    logger.info("run %s: %s", run_id, after.describe())
    return {
        "run_id": run_id,
        "status": "delivered",
        "warehouse": target.display(),
        "table": table,
        "batches_redelivered": len(redone),
        "rows_loaded": after.actual_rows,
        "verified": True,
        "message": after.describe(),
    }


@flow(name="bqhold-redeliver", log_prints=True, validate_parameters=True)
@takes_options(find_command("redeliver").options, defaults=ON_RUN_DEFAULTS)
def redeliver_flow(run_id: str, options: JobOptions) -> dict[str, Any]:
    """Load a HOLD₂ run again where the warehouse lacks it, then verify (the source is not read)."""
    flow_logging()
    return flow_outcome(lambda: redeliver_run(with_blocks(options), run_id))
