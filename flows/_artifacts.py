"""What a run shows in the Prefect UI: a progress artifact per batch, then the summary as a table
and a short markdown note on where HOLD₂ is and what to do next.

Artifacts are a view: failing to write one logs a warning and never fails the run.
"""

from __future__ import annotations

import logging
from pathlib import Path
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

from bqhold.tasks.core.checkpoint import Checkpoint, progress_percent
from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.summary import RunSummary, redeliver_command

logger = logging.getLogger("bqhold.artifacts")
PROGRESS_KEY = "bqhold-progress"
SUMMARY_KEY = "bqhold-summary"
DELIVERY_KEY = "bqhold-delivery"
AGENT_KEY = "bqhold-agent-usage"
# The agent's usage as a person reads it: label, summary key.
AGENT_LABELS = (
    ("calls sent (retries and split chunks included)", "calls"),
    ("retries", "retries"),
    ("throttled (429)", "throttled"),
    ("failed and retried (5xx, timeouts)", "failures"),
    ("records answered", "records_answered"),
    ("records rejected (quarantined)", "records_rejected"),
    ("records answered from the call log (not paid again)", "reused"),
    ("tokens (as the service reported them)", "tokens"),
    ("estimated cost (at --agent-price-per-mtok)", "estimated_cost"),
    ("seconds in calls (summed over concurrent calls)", "call_seconds"),
)


def start_progress(checkpoint: Checkpoint, inputs: tuple[InputFile, ...]) -> UUID | None:
    """Create the run's progress artifact."""
    try:
        return create_progress_artifact(
            progress_percent(checkpoint, inputs),
            key=PROGRESS_KEY,
            description=f"HOLD₁ → HOLD₂ for run {checkpoint.run_id}",
        )
    except Exception as exc:  # a view must not fail the run
        logger.warning("could not create the progress artifact: %s", exc)
        return None


def update_progress(artifact_id: UUID | None, checkpoint: Checkpoint, inputs: tuple[InputFile, ...]) -> None:
    """Move the progress artifact to the checkpoint's position."""
    if artifact_id is None:
        return
    try:
        update_progress_artifact(artifact_id, progress_percent(checkpoint, inputs))
    except Exception as exc:  # a view must not fail the run
        logger.warning("could not update the progress artifact: %s", exc)


def _next_step(summary: RunSummary) -> str:
    if summary.status in ("delivered", "already_delivered"):
        return "Nothing to do. HOLD₂ stays until `python flows/run.py cleanup --apply` removes verified runs."
    if summary.status == "unverified":
        command = redeliver_command(summary.run_id, Path(summary.hold_dir))
        return (
            f"The warehouse's counts differ from HOLD₂'s ledger. Run `{command}` (or the redeliver deployment) "
            "to load the missing batches again from HOLD₂."
        )
    return (
        "Fix what the message says, then retry this flow run (or re-run the same command): "
        "it resumes from the checkpoint."
    )


def publish_summary(summary: RunSummary) -> None:
    """The summary as a table artifact, and a markdown note on HOLD₂ and the next step."""
    try:
        rows = [{"field": name, "value": str(value)} for name, value in summary.to_dict().items()]
        create_table_artifact(rows, key=SUMMARY_KEY, description=f"bqhold run {summary.run_id}: {summary.status}")
        verified = "**verified**" if summary.verified else "**NOT verified**"
        markdown = (
            f"## bqhold run `{summary.run_id}`: {summary.status}\n\n"
            f"- Delivered to `{summary.warehouse}` table `{summary.table}`: {summary.rows_loaded:,} rows, {verified}\n"
            f"- HOLD₂ kept at `{summary.hold_dir}`\n"
            f"- Read {summary.rows_read:,}, written {summary.rows_written:,}, quarantined {summary.rows_quarantined:,}"
            f"{f' (see `{summary.quarantine_dir}`)' if summary.quarantine_dir else ''}, "
            f"duplicates skipped {summary.duplicates_skipped:,}\n\n"
            f"{summary.message}\n\n**Next:** {_next_step(summary)}\n"
        )
        create_markdown_artifact(markdown, key=DELIVERY_KEY, description=f"Where bqhold run {summary.run_id} stands")
        if summary.agent:
            _publish_agent_usage(summary)
    except Exception as exc:  # a view must not fail the run
        logger.warning("could not publish the summary artifacts: %s", exc)


def _shown(value: float | int | None) -> str:
    if value is None:
        return "not declared"
    return f"{value:,.2f}" if isinstance(value, float) else f"{value:,}"


def _publish_agent_usage(summary: RunSummary) -> None:
    """What the run's agent calls cost, as a table: calls, retries, rejections, tokens, estimated cost."""
    rows = [{"what": label, "value": _shown(summary.agent.get(key))} for label, key in AGENT_LABELS]
    create_table_artifact(rows, key=AGENT_KEY, description=f"Agent calls of bqhold run {summary.run_id}")
