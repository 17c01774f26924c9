"""Repair: re-stage a run's damaged HOLD₂ segments from HOLD₁, so its load can go on.

Every segment of the run is checked against the size and crc32c its batch committed; each one
that differs (truncated, deleted, changed) is written again from HOLD₁ where the source is
still there and unchanged. Then re-running the job's command (or `redeliver`) loads the run.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from bqhold.flows._blocks import flow_outcome, with_blocks
from bqhold.flows._hold import hold_for
from bqhold.flows._logging import flow_logging
from bqhold.flows._parameters import takes_options
from bqhold.flows._pipelines import find_command, pipeline_module
from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.storage.repair import restage_batch
from bqhold.tasks.storage.seals import segment_problem
from bqhold.tasks.warehouses import use_sources


def repair_run(options: JobOptions, run_id: str) -> dict[str, Any]:
    """Re-stage every damaged segment of a run; report which batches were repaired."""
    logger = get_run_logger()
    hold_dir = options.hold_dir
    with hold_for(options, "repair") as store:
        run = store.get_run(run_id)
        if run is None:
            raise ConfigError(f"no run {run_id} in {hold_dir}")
        if run.status in (Phase.CLEANED, Phase.ABANDONED):
            raise ConfigError(f"run {run_id} is {run.status.value}: its segments are not meant to be loaded again")
        entries = store.ledger(run_id)
        damaged = [(entry, problem) for entry in entries if (problem := segment_problem(store, entry))]
        pipeline = pipeline_module(run.job.pipeline).PIPELINE if damaged else None
        if damaged and run.job.input_spec.startswith("gs://"):
            use_sources(options)  # the objects are read again from Cloud Storage
        for entry, problem in damaged:
            logger.info("batch %d of run %s: %s; re-staging it from HOLD₁", entry.batch, run_id, problem)
            restage_batch(
                store, pipeline, run, entries, entry, options.max_record_bytes, options.nesting, options.null_markers
            )
    repaired = [entry.batch for entry, _ in damaged]
    message = (
        f"re-staged {len(repaired)} damaged segment(s) of run {run_id} from HOLD₁; re-run the job's command to load it"
        if repaired
        else f"every segment of run {run_id} is as its batch committed it; nothing to repair"
    )
    logger.info(message)
    return {"run_id": run_id, "repaired_batches": repaired, "message": message}


@flow(name="bqhold-repair", log_prints=True, validate_parameters=True)
@takes_options(find_command("repair").options)
def repair_flow(run_id: str, options: JobOptions) -> dict[str, Any]:
    """Re-stage a run's damaged HOLD₂ segments from HOLD₁."""
    flow_logging()
    return flow_outcome(lambda: repair_run(with_blocks(options), run_id))
