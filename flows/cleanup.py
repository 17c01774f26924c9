"""Cleanup: remove HOLD₂ data of runs that the warehouse verifiably holds — dry run by default.

Each candidate (a delivered run) is verified again against its warehouse *now*; only runs
whose counts still match lose their segment files and staged rows. Unverified, unfinished or
mismatching runs are never touched. The ledger, dedupe keys, quarantine files and summary stay,
so counts, dedupe and the record of what happened survive. Nothing else ever deletes HOLD₂.
"""

from __future__ import annotations

from contextlib import ExitStack, closing
from typing import Any

from prefect import flow, get_run_logger

from bqhold.flows._blocks import flow_outcome, with_blocks
from bqhold.flows._hold import hold_for
from bqhold.flows._logging import flow_logging
from bqhold.flows._parameters import ON_RUN_DEFAULTS, takes_options
from bqhold.flows._pipelines import find_command
from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.runs import RunRecord
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.core.write_modes import through_staging
from bqhold.tasks.load import verify_run
from bqhold.tasks.warehouses import open_warehouse
from bqhold.tasks.warehouses.base import Warehouse


def cleanup_runs(options: JobOptions, run_id: str | None, apply: bool) -> dict[str, Any]:
    """Clean (or, without `apply`, list) the runs whose delivery verifies now."""
    logger = get_run_logger()
    verb = "removed" if apply else "would remove"
    cleaned, kept, freed = [], [], 0
    with ExitStack() as stack, hold_for(options, "cleanup") as store:
        opened: dict[str, Warehouse] = {}

        def warehouse_of(run: RunRecord) -> Warehouse:
            """The warehouse given, else the run's own, each opened once."""
            url = options.warehouse or run.job.warehouse
            if url not in opened:
                opened[url] = stack.enter_context(closing(open_warehouse(parse_warehouse(url), options)))
            return opened[url]

        for run in store.runs():
            if run_id is not None and run.run_id != run_id:
                continue
            if run.status is not Phase.DELIVERED:
                kept.append({"run_id": run.run_id, "reason": f"status {run.status.value}"})
                continue
            # Each run is checked in its own table: a table named by a block is the next run's default.
            superseded_ok = through_staging(run.job.write_mode)  # a later merge or replace may hold its keys
            verification = verify_run(store, warehouse_of(run), run.job.table, run.run_id, superseded_ok)
            if not verification.ok:
                store.set_phase(run.run_id, Phase.UNVERIFIED, verification.describe())
                kept.append({"run_id": run.run_id, "reason": verification.describe()})
                logger.warning("run %s kept: %s", run.run_id, verification.describe())
                continue
            size = store.segment_bytes(run.run_id)
            if apply:
                store.remove_segments(run.run_id)
                store.set_phase(run.run_id, Phase.CLEANED, f"cleaned after verifying {verification.actual_rows:,} rows")
                store.forget_cleaned_rows(run.job.table)
            freed += size
            cleaned.append(run.run_id)
            logger.info(
                "run %s verified (%s rows): %s %s bytes of HOLD₂",
                run.run_id,
                f"{verification.actual_rows:,}",
                verb,
                f"{size:,}",
            )
    return {"dry_run": not apply, "cleaned" if apply else "would_clean": cleaned, "kept": kept, "bytes": freed}


@flow(name="bqhold-cleanup", log_prints=True, validate_parameters=True)
@takes_options(find_command("cleanup").options, defaults=ON_RUN_DEFAULTS)
def cleanup_flow(options: JobOptions, run_id: str | None = None, apply: bool = False) -> dict[str, Any]:
    """Delete HOLD₂ data of delivered runs that verify now (dry run unless `apply`)."""
    flow_logging()
    return flow_outcome(lambda: cleanup_runs(with_blocks(options), run_id, apply))
