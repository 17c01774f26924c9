"""The shared batch loop every pipeline's flow runs: plan → (guard → stage)* → load → verify.

State lives in HOLD₂ (ledger, checkpoint), never in this process: a flow run that dies at
any point, in any container, is resumed by the next run of the same job.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from prefect import Flow, flow, get_run_logger

from bqhold.flows._artifacts import publish_summary
from bqhold.flows._batch_loop import GuardStats, staged_batches
from bqhold.flows._blocks import flow_outcome, with_blocks
from bqhold.flows._hold import hold_for
from bqhold.flows._logging import flow_logging
from bqhold.flows._parameters import takes_options
from bqhold.tasks.core import checkpoint as checkpoints
from bqhold.tasks.core import spool
from bqhold.tasks.core.agents.session import AgentSession
from bqhold.tasks.core.agents.settings import refuse_agent_options
from bqhold.tasks.core.agents.usage import AgentUsage
from bqhold.tasks.core.checkpoint import Checkpoint, Phase
from bqhold.tasks.core.errors import (
    BqholdError,
    ExitCode,
    Interrupted,
    VerificationFailed,
    disk_full_as_error,
    exit_code_for,
)
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.memory import peak_rss_bytes
from bqhold.tasks.core.metrics import MetricsRecorder, RssSampler
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline
from bqhold.tasks.core.runs import Action
from bqhold.tasks.core.stop import graceful_stop, ignore_file_size_signal
from bqhold.tasks.core.summary import NO_RUN, RunSummary, attach_summary
from bqhold.tasks.core.table_options import TableLayout, table_layout
from bqhold.tasks.core.verify import DeliveryCheck
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.core.write_modes import staging_table, through_staging
from bqhold.tasks.load import check_relied_on, load_pending, publish_run, verify_run
from bqhold.tasks.plan import RunPlan, plan_run
from bqhold.tasks.storage.batch_run import BatchRun
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.warehouses import open_warehouse
from bqhold.tasks.warehouses.base import Warehouse


class _Run:
    """One execution of a job: the loop, and the summary whatever the outcome."""

    def __init__(self, pipeline: Pipeline, options: JobOptions) -> None:
        self.pipeline, self.options = pipeline, options
        self.target = parse_warehouse(options.warehouse)
        self.layout = HoldLayout(options.hold_dir.resolve())
        self.started = time.monotonic()
        self.plan: RunPlan | None = None
        self.checkpoint: Checkpoint | None = None
        self.verification: DeliveryCheck | None = None
        self.timings: dict[str, float] = {}
        self.fixed_cost: dict[str, float] = {}
        self.guard = GuardStats()
        self.batch_run: BatchRun | None = None  # built once the plan names the run
        self.agent_usage: AgentUsage | None = None  # an agent pipeline's calls, once its agent is closed

    @contextmanager
    def _timed(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            self.timings[name] = round(time.monotonic() - started, 2)

    def execute(self) -> RunSummary:
        ignore_file_size_signal()
        flow_logging()
        with graceful_stop() as self.stop, RssSampler() as sampler:
            try:
                # Any way of saying "disk full", wherever it surfaces (a DuckDB commit while
                # planning, too), is the one resumable line DiskFull says.
                with disk_full_as_error(self.layout.root), hold_for(self.options, self.pipeline.name) as store:
                    # Before the plan, so a warehouse that can never be loaded leaves no run behind.
                    warehouse = open_warehouse(self.target, self.options, self.stop.check, self._layout())
                    try:
                        self._plan(store, sampler)
                        self._deliver(warehouse)
                    except BaseException as exc:
                        self._forget_if_refused_before_staging(store, exc)
                        raise
                    finally:
                        self._close_agent()
                        warehouse.close()
            except BaseException as exc:
                attach_summary(exc, self._finish(exc).to_dict())
                raise
            return self._finish(None)

    def _plan(self, store: HoldStore, sampler: RssSampler) -> None:
        self.plan = plan_run(store, self.pipeline.name, self.options, self.target.display())
        self.checkpoint = self.plan.checkpoint
        metrics = MetricsRecorder(self.plan.run_id, sampler)
        agent = None
        if self.pipeline.agent is not None and self.plan.action is not Action.ALREADY_DELIVERED:
            run_id = self.plan.run_id
            agent = AgentSession(
                self.pipeline.agent(self.options),
                self.layout.run_dir(run_id),
                self.stop,
                store.mirror,
                f"runs/{run_id}/",
            )
        self.batch_run = BatchRun(
            store,
            self.pipeline,
            self.options,
            self.plan.run_id,
            self.plan.inputs,
            self.target.display(),
            metrics,
            agent=agent,
        )
        logger = get_run_logger()
        logger.info(self.plan.headline)
        for note in self.plan.notes:
            logger.warning(note)

    def _close_agent(self) -> None:
        """Tear the agent down (its clients, its model) and keep its usage for the summary."""
        agent = self.batch_run.agent if self.batch_run else None
        if agent is not None:
            agent.close()
            self.agent_usage = agent.usage

    def _forget_if_refused_before_staging(self, store: HoldStore, error: BaseException) -> None:
        """A new run that unusable input stopped before it staged anything leaves no state, like
        a refusal before it started: once the input is fixed, the same command must not meet it."""
        plan = self.plan
        if plan is None or plan.action is not Action.NEW or exit_code_for(error) != ExitCode.UNUSABLE_INPUT:
            return
        try:
            if not store.ledger(plan.run_id):
                store.forget_run(plan.run_id)
        except Exception as exc:  # the refusal is what the user must see, not this
            get_run_logger().warning("run %s could not be removed: %s", plan.run_id, exc)

    def _layout(self) -> TableLayout:
        """How a new table is laid out: the options' partitioning and clustering, the pipeline's descriptions."""
        pipeline, options = self.pipeline, self.options
        return table_layout(
            options.partition_by or pipeline.partition_by,
            options.cluster_by or pipeline.cluster_by,
            pipeline.description,
            pipeline.column_descriptions,
            asked=bool(options.partition_by or options.cluster_by),
        )

    def _deliver(self, warehouse: Warehouse) -> None:
        """Stage what is left, then load and verify, moving the run's phase as it goes."""
        run = self.batch_run
        new_data = self.plan.action is not Action.ALREADY_DELIVERED
        if new_data:
            self._stage()
            spool.drop(run.inputs)  # the plain copies of compressed and gs:// inputs: read to the end
            self.checkpoint = run.store.set_phase(run.run_id, Phase.LOADING, checkpoint=self.checkpoint)
        with self._timed("load_s"):
            self._load_and_verify(warehouse, new_data)
        if new_data:
            own = self.verification.own
            phase = Phase.DELIVERED if own.ok else Phase.UNVERIFIED
            self.checkpoint = run.store.set_phase(run.run_id, phase, own.describe(), checkpoint=self.checkpoint)
            if own.ok and through_staging(self.options.write_mode):
                warehouse.drop(staging_table(run.table, run.run_id))  # delivered: it is not needed again
        if not self.verification.ok:
            raise VerificationFailed(self.verification.describe())

    def _stage(self) -> None:
        """Stage every remaining batch, following each committed one (a failure reports what was staged)."""
        with self._timed("stage_s"):
            self._note_fixed_cost()
            batches = staged_batches(self.batch_run, self.checkpoint, self.stop)
            for self.checkpoint, self.guard in batches:
                pass

    def _load_and_verify(self, warehouse: Warehouse, load: bool) -> None:
        """Load what HOLD₂ holds of the run (unless nothing is new), then verify; keep both stages' timings."""
        run = self.batch_run
        timings = run.metrics.timings(None, self.checkpoint.batch_size)
        if load:
            with timings.stage("load") as stage:
                mode = self.options.write_mode
                if through_staging(mode):
                    publish_run(run.store, warehouse, run.table, run.run_id, mode, self.options.key, self.stop.check)
                else:
                    load_pending(run.store, warehouse, run.table, run.run_id, between_groups=self.stop.check)
                stage.rows = self.checkpoint.counters.rows_written
        with timings.stage("verify") as stage:
            self.verification = self._verify(warehouse)
            stage.rows = self.verification.actual_rows
        run.store.record_metrics(timings.records)

    def _verify(self, warehouse: Warehouse) -> DeliveryCheck:
        """The run's own counts, and those of the runs it relies on (nothing new: those that
        delivered its input; else those whose keys made it skip records)."""
        store = self.batch_run.store
        plan = self.plan
        hold_dir = self.options.hold_dir
        if plan.action is Action.ALREADY_DELIVERED:
            relied_on = check_relied_on(store, warehouse, list(plan.delivered_by))
            return DeliveryCheck(plan.run_id, None, tuple(relied_on), hold_dir)
        own = verify_run(store, warehouse, self.options.table, plan.run_id)
        relied_on = check_relied_on(store, warehouse, store.dependencies(plan.run_id), own=plan.run_id)
        return DeliveryCheck(plan.run_id, own, tuple(relied_on), hold_dir)

    def _note_fixed_cost(self) -> None:
        process = psutil.Process()
        self.fixed_cost = {
            "first_batch_s": round(time.time() - process.create_time(), 2),
            "first_batch_rss_mb": round(process.memory_info().rss / 2**20, 1),
        }

    def _finish(self, error: BaseException | None) -> RunSummary:
        summary = self._summary(error)
        if self.options.summary_json:
            self._save_summary(summary, Path(self.options.summary_json))
        if self.plan is not None:
            self._save_summary(summary, self.layout.summary(self.plan.run_id))
        publish_summary(summary)
        if error is None:
            get_run_logger().info(
                "run %s %s: %s rows loaded into %s, %s",
                summary.run_id,
                summary.status,
                f"{summary.rows_loaded:,}",
                summary.table,
                summary.message,
            )
        return summary

    @staticmethod
    def _save_summary(summary: RunSummary, path: Path) -> None:
        """Write the summary; if that fails (the disk is still full) say so in one line and go on,
        so the run's own outcome and message stay what the user sees."""
        try:
            summary.save(path)
        except OSError as exc:
            get_run_logger().warning("the summary could not be written to %s: %s", path, exc.strerror or exc)

    def _summary(self, error: BaseException | None) -> RunSummary:
        plan, cp = self.plan, self.checkpoint
        run_id = plan.run_id if plan else NO_RUN
        counters = cp.counters if cp else checkpoints.Counters()
        loaded = self.verification.actual_rows if self.verification else 0
        verified = bool(self.verification and self.verification.ok)
        if error is None:
            status = "already_delivered" if plan.action is Action.ALREADY_DELIVERED else "delivered"
            message = self.verification.describe()
        else:
            status = {VerificationFailed: "unverified", Interrupted: "interrupted"}.get(type(error), "failed")
            message = str(error) if isinstance(error, BqholdError) else f"{type(error).__name__}: {error}"
        quarantine = self.layout.quarantine_dir(run_id) if plan else None
        return RunSummary(
            run_id=run_id,
            status=status,
            pipeline=self.pipeline.name,
            table=self.options.table,
            warehouse=self.target.display(),
            rows_read=counters.rows_read,
            rows_written=counters.rows_written,
            rows_quarantined=counters.rows_quarantined,
            duplicates_skipped=counters.duplicates_skipped,
            rows_loaded=loaded,
            verified=verified,
            batches=cp.next_batch if cp else 0,
            final_batch_size=cp.batch_size if cp else self.options.batch_size,
            resumed_from_batch=plan.resumed_from_batch if plan else None,
            peak_rss_mb=round(peak_rss_bytes() / 2**20, 1),
            duration_s=round(time.monotonic() - self.started, 2),
            hold_dir=str(self.layout.root),
            quarantine_dir=str(quarantine) if quarantine and quarantine.exists() else None,
            message=message,
            exit_code=ExitCode.DELIVERED if error is None else exit_code_for(error),
            **self.timings,
            **self.fixed_cost,
            guard_shrinks=self.guard.shrinks,
            guard_grows=self.guard.grows,
            oom_retries=self.guard.oom_retries,
            files_skipped=plan.skipped_files if plan else (),
            agent=self._agent_summary(),
        )

    def _agent_summary(self) -> dict | None:
        """The agent's usage over the run, with its estimated cost (None: not an agent pipeline)."""
        usage = self.agent_usage
        if usage is None:
            return None
        agent = self.batch_run.agent.agent
        return usage.as_dict() | {"estimated_cost": usage.cost(agent.price_per_million_tokens, agent.price_per_call)}


def run_job(pipeline: Pipeline, options: JobOptions) -> dict[str, Any]:
    """Run one job to the end (or to a resumable stop) and return its summary."""
    options = with_blocks(options)
    if pipeline.agent is None:
        refuse_agent_options(options, pipeline.name)
    return _Run(pipeline, options).execute().to_dict()


def pipeline_flow(pipeline: Pipeline) -> Flow:
    """The Prefect flow of a pipeline: every job option as a parameter (the pipeline's key as
    `key`'s default), its own name."""

    def run(options: JobOptions) -> dict[str, Any]:
        return flow_outcome(lambda: run_job(pipeline, options))

    run.__doc__ = f"{pipeline.description} Stages HOLD₁ into HOLD₂, then delivers and verifies."
    job = takes_options(required=("input",), defaults={"key": pipeline.default_key})(run)
    return flow(name=f"bqhold-{pipeline.name}", log_prints=True, validate_parameters=True)(job)
