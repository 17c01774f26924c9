"""Which run a command means: resume an unfinished one, start a new one, or report a done one."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from tasks.core.checkpoint import Phase
from tasks.core.errors import ConfigError, ResumeRefused
from tasks.core.inputs import InputFile, describe_change
from tasks.core.layout import check_run_id


@dataclass(frozen=True)
class JobIdentity:
    """What makes two commands the same job: the same pipeline, input, key and destination."""

    pipeline: str
    input_spec: str
    table: str
    key: str | None
    warehouse: str

    def differences(self, other: JobIdentity) -> list[str]:
        """Human descriptions of the fields in which `other` differs."""
        return [
            f"{name} was {getattr(self, name)!r}, now {getattr(other, name)!r}"
            for name in ("pipeline", "input_spec", "table", "key", "warehouse")
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


def new_run_id(pipeline: str, now: datetime) -> str:
    """A fresh, sortable run id such as `generic-20261122T101500Z-3fa2`."""
    return f"{pipeline}-{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(2)}"


def choose_run(
    job: JobIdentity,
    inputs: tuple[InputFile, ...],
    fingerprint: str,
    requested_id: str | None,
    fresh: bool,
    known: list[RunRecord],
    now: datetime,
) -> RunChoice:
    """Decide between resuming, starting anew and reporting an already delivered run."""
    by_id = {run.run_id: run for run in known}
    if requested_id is not None:
        check_run_id(requested_id)
        existing = by_id.get(requested_id)
        if existing is None:
            return RunChoice(Action.NEW, requested_id)
        if fresh:
            raise ConfigError(f"run {requested_id} already exists; --fresh needs a new --run-id (or none)")
        return _continue(existing, job, inputs, fingerprint)
    if not fresh:
        same_job = sorted((run for run in known if run.job == job), key=lambda run: run.created_at)
        unfinished = [run for run in same_job if not run.status.finished]
        if unfinished:
            return _continue(unfinished[-1], job, inputs, fingerprint)
        delivered = [run for run in same_job if run.fingerprint == fingerprint]
        if delivered:
            return RunChoice(Action.ALREADY_DELIVERED, delivered[-1].run_id, delivered[-1])
    return RunChoice(Action.NEW, new_run_id(job.pipeline, now))


def _continue(existing: RunRecord, job: JobIdentity, inputs: tuple[InputFile, ...], fingerprint: str) -> RunChoice:
    differences = existing.job.differences(job)
    if differences:
        raise ResumeRefused(
            f"run {existing.run_id} belongs to another job ({'; '.join(differences)}); "
            "use the same options, or another --run-id"
        )
    if existing.status.finished:
        return RunChoice(Action.ALREADY_DELIVERED, existing.run_id, existing)
    if existing.fingerprint != fingerprint:
        raise ResumeRefused(
            f"input changed since run {existing.run_id} was checkpointed ({describe_change(existing.inputs, inputs)}); "
            "restore it to resume, "
            f"or pass --fresh to start a new run (run {existing.run_id} stays in HOLD₂)"
        )
    return RunChoice(Action.RESUME, existing.run_id, existing)
