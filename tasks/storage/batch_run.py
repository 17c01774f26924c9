"""The run context of the batch path: what every step of a run's batches needs, built once per run.

The steps (guard, stage, write) take it plus what varies — the checkpoint and the batch's size —
and return what they did (a guard decision, a committed batch with its stage timings). It lives
beside HoldStore because it carries one: the lowest layer that can know all of its parts.
"""

from __future__ import annotations

from dataclasses import dataclass

from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.metrics import MetricsRecorder
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.storage.hold_store import HoldStore


@dataclass(frozen=True)
class BatchRun:
    """One run's batch path: where it stages (HOLD₂), what it reads and how, and what it measures with."""

    store: HoldStore
    pipeline: Pipeline
    options: JobOptions
    run_id: str
    inputs: tuple[InputFile, ...]  # HOLD₁'s files of this run, in reading order
    warehouse: str  # the job's warehouse as displayed: dedupe keys are scoped by it
    metrics: MetricsRecorder

    @property
    def table(self) -> str:
        """The destination table, which names the staged table and the dedupe keys' scope."""
        return self.options.table
