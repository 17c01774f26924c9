"""The run context of the batch path: what every step of a run's batches needs, built once per run.

The steps (guard, stage, write) take it plus what varies — the checkpoint and the batch's size —
and return what they did (a guard decision, a committed batch with its stage timings). It lives
beside HoldStore because it carries one: the lowest layer that can know all of its parts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from bqhold.tasks.core.agents.session import AgentSession
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.metrics import MetricsRecorder
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.read_ahead import ReadAhead
from bqhold.tasks.core.readers.fast_json import next_learnt
from bqhold.tasks.core.records import EXACT_PARSE, ParseChoice, RawBatch
from bqhold.tasks.storage.hold_store import HoldStore


class LearntSchema:
    """The schema the run's last JSONL batch was parsed with, kept for the next one's fast parse
    (a plain object, not a dataclass: Prefect rebuilds the dataclasses a task is given, and this
    must stay the run's one instance). A resumed run starts without one."""

    def __init__(self) -> None:
        self.schema: pl.Schema | None = None

    def choice(self, parser: str) -> ParseChoice:
        """How the next batch may be parsed under `--parser`."""
        return ParseChoice(fast=True, learnt=self.schema) if parser == "fast" else EXACT_PARSE

    def keep(self, raw: RawBatch) -> None:
        """Learn the schema `raw` was parsed with (other formats have none)."""
        if raw.schema is not None:
            self.schema = next_learnt(self.schema, raw.schema)


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
    learnt: LearntSchema = field(default_factory=LearntSchema, compare=False)  # between batches
    read_ahead: ReadAhead = field(default_factory=ReadAhead, compare=False)  # the next batch's read
    agent: AgentSession | None = field(default=None, compare=False)  # an agent pipeline's calls

    @property
    def table(self) -> str:
        """The destination table, which names the staged table and the dedupe keys' scope."""
        return self.options.table
