"""Prefect task: decide which run this is and where it starts (new, resumed, or nothing new)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from prefect import task
from prefect.cache_policies import NO_CACHE

from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core.checkpoint import Checkpoint, Phase
from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import InputError, ResumeRefused, StateError
from bqhold.tasks.core.increments import (
    Change,
    FileDecision,
    changed_files_error,
    decide,
    delivered_files,
    resume_problem,
)
from bqhold.tasks.core.inputs import InputFile, fingerprint
from bqhold.tasks.core.ledger import reconcile, tip_checkpoint
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.readers import validate_readable
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import Action, JobIdentity, RunChoice, RunRecord, choose_run
from bqhold.tasks.core.table_source import SCHEME as TABLE_SCHEME
from bqhold.tasks.core.table_source import parse_table_spec
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.hold_writer import sweep_run
from bqhold.tasks.warehouses import resolve_sources


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
    delivered_by: tuple[str, ...] = ()  # nothing new: the runs that delivered this input, to verify
    skipped_files: tuple[str, ...] = ()  # matched files delivered before, unchanged


def input_identity(spec: str) -> str:
    """The input spec as an absolute path (pattern), so a job is the same from any directory; a
    bucket's pattern as it is, a DuckDB table with its file's absolute path."""
    if spec.startswith(TABLE_SCHEME):
        return parse_table_spec(spec).spec
    if "://" in spec:
        return spec
    return os.path.abspath(os.path.expanduser(spec))


def _ledger_checkpoint(store: HoldStore, run: RunRecord, batch_size: int) -> tuple[Checkpoint, list[str]]:
    """Where a run is: its saved checkpoint, corrected by (or, if damaged, rebuilt from) HOLD₂'s ledger."""
    notes = []
    try:
        saved = checkpoints.load(store.layout.checkpoint(run.run_id))
    except StateError as exc:
        saved = None
        notes.append(str(exc))
    implied = tip_checkpoint(run.run_id, run.fingerprint, store.ledger(run.run_id), batch_size)
    resumed, note = reconcile(saved, implied)
    if note:
        notes.append(note)
    return resumed, notes


def _resume_checkpoint(
    store: HoldStore, run: RunRecord, batch_size: int, matched_now: dict[str, InputFile]
) -> tuple[Checkpoint, list[str]]:
    swept = sweep_run(store.layout, run.run_id)
    resumed, notes = _ledger_checkpoint(store, run, batch_size)
    if swept:
        notes.insert(0, f"removed {swept} unfinished temp file(s) left by the interrupted run")
    if not resumed.input_done:
        problem = resume_problem(run, resumed.position, matched_now)
        if problem:
            raise ResumeRefused(
                f"cannot resume run {run.run_id}: {problem}. Restore the file to resume, or pass --fresh to give "
                f"run {run.run_id} up (it has loaded nothing; its records stop counting as staged) and start anew"
            )
    size = min(batch_size, resumed.batch_size or batch_size)
    phase = Phase.LOADING if resumed.input_done else Phase.STAGING
    return replace(resumed, batch_size=size, phase=phase), notes


def _matched_now(store: HoldStore, options: JobOptions) -> dict[str, InputFile]:
    """What `--input` matches now, by name (nothing, if it matches nothing usable)."""
    try:
        return {item.name: item for item in resolve_sources(options.input, store.layout.spool_dir, options)}
    except InputError:
        return {}


def _waiting_files(run: RunRecord, matched: dict[str, InputFile]) -> list[str]:
    """A note when the input now matches files the resumed run does not read (the next run will)."""
    waiting = matched.keys() - {item.name for item in run.inputs}
    if not waiting:
        return []
    return [
        f"{len(waiting)} file(s) matched by --input now are not part of run {run.run_id}; "
        "the next run of this command delivers them"
    ]


def _give_up_staging_run(store: HoldStore, run: RunRecord, reason: str) -> None:
    """Abandon a run that has loaded nothing, unless another run skipped records because of it."""
    dependents = store.dependents(run.run_id)
    if dependents:
        raise ResumeRefused(
            f"run(s) {', '.join(dependents)} skipped records as duplicates of unfinished run {run.run_id}; giving "
            f"{run.run_id} up would lose them. Resume it (re-run without --fresh), or abandon those runs too "
            f"(`{run_command('abandon', 'RUN', store.layout.root)}`)"
        )
    store.set_phase(run.run_id, Phase.ABANDONED, reason)


def _delivered_checkpoint(run_id: str, batch_size: int) -> Checkpoint:
    """Where a command that loads nothing new stands: past the input, nothing read this time."""
    return Checkpoint(run_id, "", batch_size=batch_size, phase=Phase.DELIVERED, input_done=True)


def _nothing_new(skipped: list[FileDecision], batch_size: int) -> RunPlan:
    """The plan when every matched file was delivered before and has not changed."""
    runs = tuple(sorted({decision.delivered.run_id for decision in skipped}))
    headline = (
        f"already delivered: the {len(skipped)} file(s) the input matches were delivered by run(s) {', '.join(runs)} "
        "and have not changed; checking the warehouse"
    )
    return RunPlan(
        Action.ALREADY_DELIVERED,
        runs[-1],
        (),
        _delivered_checkpoint(runs[-1], batch_size),
        headline=headline,
        delivered_by=runs,
        skipped_files=tuple(decision.file.name for decision in skipped),
    )


@task(name="plan-run", cache_policy=NO_CACHE)
def plan_run(store: HoldStore, pipeline: str, options: JobOptions, warehouse: str) -> RunPlan:
    """Resume an unfinished run, report a delivered one, or start a new run over what is new."""
    job = JobIdentity(
        pipeline, input_identity(options.input), options.table, options.key, warehouse, options.write_mode
    )
    now = datetime.now(UTC)
    known = store.runs()
    choice = choose_run(job, options.run_id, options.fresh, known, now, store.layout.root)

    if choice.action is Action.ALREADY_DELIVERED:  # a delivered run named by --run-id
        headline = f"run {choice.run_id} already delivered its input; checking the warehouse"
        done = _delivered_checkpoint(choice.run_id, options.batch_size)
        return RunPlan(choice.action, choice.run_id, (), done, headline=headline, delivered_by=(choice.run_id,))

    if choice.action is Action.RESUME:
        matched = _matched_now(store, options)
        start, notes = _resume_checkpoint(store, choice.existing, options.batch_size, matched)
        notes += _waiting_files(choice.existing, matched)
        headline = (
            f"resuming run {choice.run_id} from batch {start.next_batch} "
            f"({start.counters.rows_written:,} rows already in HOLD₂)"
        )
        return RunPlan(
            choice.action, choice.run_id, choice.existing.inputs, start, start.next_batch, headline, tuple(notes)
        )

    return _new_run(store, job, choice, known, options, now)


def _notes_for_new_run(
    choice: RunChoice, decisions: list[FileDecision], known: list[RunRecord], job: JobIdentity
) -> list[str]:
    """What a new run tells the user before it starts: runs given up, files skipped or grown."""
    notes = []
    if choice.abandon:
        notes.append(f"gave up unfinished run(s) {', '.join(run.run_id for run in choice.abandon)} (--fresh)")
    for change, what in (
        (Change.UNCHANGED, "delivered before and unchanged: skipping"),
        (Change.GROWN, "grown since delivered: reading only what was appended to"),
    ):
        names = [os.path.basename(decision.file.name) for decision in decisions if decision.change is change]
        if names:
            more = f" and {len(names) - 3} more" if len(names) > 3 else ""
            notes.append(f"{len(names)} file(s) {what}: {', '.join(names[:3])}{more}")
    sharing = [run.run_id for run in known if run.status.resumable and run.job != job and run.job.delivers_like(job)]
    if sharing:
        notes.append(
            f"unfinished run(s) {', '.join(sharing)} also stage table {job.table}; "
            "their records count for dedupe until they are delivered"
        )
    return notes


def _new_run(
    store: HoldStore, job: JobIdentity, choice: RunChoice, known: list[RunRecord], options: JobOptions, now: datetime
) -> RunPlan:
    """A new run over what the job has not delivered yet — or, when nothing is new, a check of the warehouse."""
    inputs = resolve_sources(options.input, store.layout.spool_dir, options)
    for item in inputs:
        validate_readable(item)
    # A replace makes the table hold exactly what the run reads: all of the input, every time.
    earlier = [] if job.write_mode == "replace" else known
    delivered_runs = [run for run in earlier if run.status.finished and run.job.delivers_like(job)]
    delivered = delivered_files(delivered_runs, store.finished_files([run.run_id for run in delivered_runs]))
    decisions = [decide(item, delivered.get(item.name)) for item in inputs]
    changed = [decision for decision in decisions if decision.change is Change.CHANGED]
    if changed:
        raise changed_files_error(changed, store.layout.root)
    for run in choice.abandon:
        _give_up_staging_run(store, run, f"given up by --fresh at {now:%Y-%m-%d %H:%M:%S} UTC; replaced by a new run")
    skipped = [decision for decision in decisions if decision.change is Change.UNCHANGED]
    to_read = tuple(decision.file for decision in decisions if decision.change in (Change.NEW, Change.GROWN))
    if not to_read:
        return _nothing_new(skipped, options.batch_size)
    digest = fingerprint(to_read)
    first = to_read[0]
    start = Checkpoint(
        run_id=choice.run_id,
        fingerprint=digest,
        batch_size=options.batch_size,
        position=Position(0, first.start_offset, first.start_line, first.start_crc),
    )
    store.create_run(RunRecord(choice.run_id, job, to_read, digest, Phase.STAGING, now), start)
    size = sum(item.size - item.start_offset for item in to_read if not item.format.by_rows)
    return RunPlan(
        choice.action,
        choice.run_id,
        to_read,
        start,
        headline=f"new run {choice.run_id}: {len(to_read)} input file(s), {size:,} bytes to read",
        notes=tuple(_notes_for_new_run(choice, decisions, known, job)),
        skipped_files=tuple(decision.file.name for decision in skipped),
    )
