"""Prefect task: decide which run this is and where it starts (new, resumed, or done)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from tasks.core import checkpoint as checkpoints
from tasks.core.checkpoint import Checkpoint, Phase
from tasks.core.errors import StateError
from tasks.core.inputs import InputFile, fingerprint, resolve_inputs
from tasks.core.ledger import reconcile, tip_checkpoint
from tasks.core.options import JobOptions
from tasks.core.readers import validate_readable
from tasks.core.runs import Action, JobIdentity, RunRecord, choose_run
from tasks.storage.hold_store import HoldStore
from tasks.storage.hold_writer import sweep_run


@dataclass(frozen=True)
class RunPlan:
    """The run a command means and the checkpoint it starts from."""

    action: Action
    run_id: str
    inputs: tuple[InputFile, ...]
    checkpoint: Checkpoint
    resumed_from_batch: int | None = None
    headline: str = ""
    notes: tuple[str, ...] = field(default_factory=tuple)  # warnings worth showing the user


def input_identity(spec: str) -> str:
    """The input spec as an absolute path (pattern), so a job is the same from any directory."""
    return os.path.abspath(os.path.expanduser(spec))


def _resume_checkpoint(store: HoldStore, run: RunRecord, batch_size: int) -> tuple[Checkpoint, list[str]]:
    notes = []
    swept = sweep_run(store.layout, run.run_id)
    if swept:
        notes.append(f"removed {swept} unfinished temp file(s) left by the interrupted run")
    try:
        saved = checkpoints.load(store.layout.checkpoint(run.run_id))
    except StateError as exc:
        saved = None
        notes.append(str(exc))
    implied = tip_checkpoint(run.run_id, run.fingerprint, store.ledger(run.run_id), batch_size)
    resumed, note = reconcile(saved, implied)
    if note:
        notes.append(note)
    size = min(batch_size, resumed.batch_size or batch_size)
    phase = Phase.LOADING if resumed.input_done else Phase.STAGING
    return replace(resumed, batch_size=size, phase=phase), notes


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_run(store: HoldStore, pipeline: str, options: JobOptions, warehouse: str) -> RunPlan:
    """Resolve the input, then start a new run, resume an unfinished one, or report a done one."""
    inputs = resolve_inputs(options.input)
    for item in inputs:
        validate_readable(item)
    digest = fingerprint(inputs)
    job = JobIdentity(pipeline, input_identity(options.input), options.table, options.key, warehouse)
    now = datetime.now(UTC)
    known = store.runs()
    choice = choose_run(job, inputs, digest, options.run_id, options.fresh, known, now)

    if choice.action is Action.ALREADY_DELIVERED:
        saved = checkpoints.load(store.layout.checkpoint(choice.run_id))
        headline = f"run {choice.run_id} already delivered this input; checking the warehouse (--fresh loads it again)"
        start = saved or Checkpoint(choice.run_id, digest)
        return RunPlan(choice.action, choice.run_id, choice.existing.inputs, start, headline=headline)

    if choice.action is Action.RESUME:
        start, notes = _resume_checkpoint(store, choice.existing, options.batch_size)
        headline = (
            f"resuming run {choice.run_id} from batch {start.next_batch} "
            f"({start.counters.rows_written:,} rows already in HOLD₂)"
        )
        return RunPlan(
            choice.action, choice.run_id, choice.existing.inputs, start, start.next_batch, headline, tuple(notes)
        )

    unfinished = [run.run_id for run in known if run.job.table == options.table and not run.status.finished]
    notes = []
    if unfinished:
        notes.append(
            f"unfinished run(s) {', '.join(unfinished)} also stage table {options.table}; "
            "their records count for dedupe until they are delivered"
        )
    store.create_run(RunRecord(choice.run_id, job, inputs, digest, Phase.STAGING, now))
    start = Checkpoint(run_id=choice.run_id, fingerprint=digest, batch_size=options.batch_size)
    checkpoints.save(store.layout.checkpoint(choice.run_id), start)
    headline = f"new run {choice.run_id}: {len(inputs)} input file(s), {sum(i.size for i in inputs):,} bytes"
    return RunPlan(choice.action, choice.run_id, inputs, start, headline=headline, notes=tuple(notes))
