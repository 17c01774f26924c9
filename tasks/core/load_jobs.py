"""What a BigQuery load job means for its group: is it this group's, and what comes after it.

A group's jobs are tried under attempt numbers 0, 1, 2... (tasks/core/load_plan.py names them);
each id names one job for good. A job found under one of our ids is checked to be this group's
load before its outcome is used. A job that an earlier process submitted and that failed is a
spent attempt: the next number is tried, whatever made it fail (the cause may be fixed by now).
A job this process submitted that failed is tried again under the next number when the failure
is transient, and stops the run when it is permanent.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bqhold.tasks.core.errors import Category, classify_response

HOLD_LABEL = "bqhold_hold"  # the job label that names the HOLD₂ a load job reads


@dataclass(frozen=True)
class JobSeen:
    """A load job as BigQuery describes it."""

    job_id: str
    destination: str  # project.dataset.table
    hold_label: str | None
    done: bool
    error_reason: str | None = None  # None: no error (yet)
    error_message: str = ""
    output_rows: int | None = None


class Step(str, Enum):
    """What to do once waiting on a job is over."""

    USE = "use"  # it succeeded: its rows are the group's
    NEXT_ATTEMPT = "next_attempt"  # it failed: try the next attempt number
    REJECTED = "rejected"  # it failed for good in this process: stop and say what to fix
    STUCK = "stuck"  # it never reached DONE, even cancelled: stop, resumably


def not_this_groups(job: JobSeen, destination: str, hold_id: str, rows: int) -> str | None:
    """Why a job found under one of this group's ids is not its load (None: it is)."""
    if job.destination != destination:
        return f"it loads into {job.destination}, not {destination}"
    if job.hold_label != hold_id:
        return f"its {HOLD_LABEL} label is {job.hold_label!r}, not this hold dir's {hold_id!r}"
    if job.done and job.error_reason is None and job.output_rows is not None and job.output_rows != rows:
        return f"it loaded {job.output_rows:,} rows, the group has {rows:,}"
    return None


def after(job: JobSeen, submitted_here: bool) -> Step:
    """The step after waiting on `job`; `submitted_here`: this process sent it."""
    if not job.done:
        return Step.STUCK
    if job.error_reason is None:
        return Step.USE
    if not submitted_here or classify_response(None, job.error_reason) is Category.TRANSIENT:
        return Step.NEXT_ATTEMPT
    return Step.REJECTED
