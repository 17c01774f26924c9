"""Which run a command means: resume an unfinished one, start a new one, or report a done one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from pathlib import Path

from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import ConfigError, ResumeRefused
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.layout import check_run_id


@dataclass(frozen=True)
class JobIdentity:
    """What makes two commands the same job: the same pipeline, input, key, destination and write mode."""

    pipeline: str
    input_spec: str
    table: str
    key: str | None
    warehouse: str
    write_mode: str = "append"  # docs/design.md, Write modes

    def delivers_like(self, other: JobIdentity) -> bool:
        """True when `other` puts the same pipeline's records into the same table: a file one
        delivered counts as delivered for the other, whatever input pattern matched it."""
        return (self.pipeline, self.table, self.warehouse) == (other.pipeline, other.table, other.warehouse)

    def differences(self, other: JobIdentity) -> list[str]:
        """Human descriptions of the fields in which `other` differs."""
        return [
            f"{name} was {getattr(self, name)!r}, now {getattr(other, name)!r}"
            for name in ("pipeline", "input_spec", "table", "key", "warehouse", "write_mode")
            if getattr(self, name) != getattr(other, name)
        ]


@dataclass(frozen=True)
class RunRecord:
    """A run as HOLD₂ remembers it."""

    run_id: str
    job: JobIdentity
    inputs: tuple[InputFile, ...]
    fingerprint: str
    status: Phase
    created_at: datetime


class Action(str, Enum):
    """What to do with the run a command names."""

    NEW = "new"
    RESUME = "resume"
    ALREADY_DELIVERED = "already_delivered"


@dataclass(frozen=True)
class RunChoice:
    """The decision, with the run it applies to (None: a new run with `run_id`)."""

    action: Action
    run_id: str
    existing: RunRecord | None = None
    abandon: tuple[RunRecord, ...] = ()  # unfinished runs a new run replaces (--fresh)


def new_run_id(pipeline: str, now: datetime) -> str:
    """A fresh, sortable run id such as `generic-20261122T101500Z-3fa2`."""
    return f"{pipeline}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def choose_run(
    job: JobIdentity,
    requested_id: str | None,
    fresh: bool,
    known: list[RunRecord],
    now: datetime,
    hold_dir: Path | None = None,
) -> RunChoice:
    """Decide between resuming a run, reporting a delivered one and starting a new one.

    Without a run id, the job's latest unfinished run is resumed; with `fresh`, unfinished runs
    that are still staging are given up instead (they have loaded nothing) and a new run starts.
    Which files a new run reads is decided afterwards (tasks/core/increments.py).
    """
    if requested_id is not None:
        check_run_id(requested_id)
        existing = next((run for run in known if run.run_id == requested_id), None)
        if existing is not None:
            if fresh:
                raise ConfigError(f"run {requested_id} already exists; --fresh needs a new --run-id (or none)")
            return _continue(existing, job)
    same_job = sorted((run for run in known if run.job == job), key=lambda run: run.created_at)
    unfinished = [run for run in same_job if run.status.resumable]
    if unfinished and requested_id is None and not fresh:
        return RunChoice(Action.RESUME, unfinished[-1].run_id, unfinished[-1])
    run_id = requested_id or new_run_id(job.pipeline, now)
    if not fresh:
        return RunChoice(Action.NEW, run_id)
    loaded = [run for run in unfinished if run.status is not Phase.STAGING]
    if loaded:
        raise ResumeRefused(
            f"run {loaded[-1].run_id} of this job is staged and (partly) loaded, so --fresh cannot start over "
            "beside it: finish it by re-running without --fresh, or take its rows out of the warehouse with "
            f"`{run_command('abandon', loaded[-1].run_id, hold_dir)}` first"
        )
    return RunChoice(Action.NEW, run_id, abandon=tuple(unfinished))


def _continue(existing: RunRecord, job: JobIdentity) -> RunChoice:
    differences = existing.job.differences(job)
    if differences:
        raise ResumeRefused(
            f"run {existing.run_id} belongs to another job ({'; '.join(differences)}); "
            "use the same options, or another --run-id"
        )
    if existing.status is Phase.ABANDONED:
        raise ConfigError(f"run {existing.run_id} was abandoned; choose another --run-id (or none)")
    if existing.status.finished:
        return RunChoice(Action.ALREADY_DELIVERED, existing.run_id, existing)
    return RunChoice(Action.RESUME, existing.run_id, existing)
