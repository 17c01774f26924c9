"""What a run shows in the Prefect UI: a progress artifact that moves while staging, then the
summary as markdown a person reads (and the agent's usage as a table, for agent pipelines).

A retried flow run (the UI's Retry: the same flow run, run_count 2) updates the cards its
earlier attempt made, under the same keys, instead of adding stale ones beside them: on a
retry each artifact is first looked up by (flow run, key). A first attempt makes no such request.

Artifacts are a view: failing to write one logs a warning and never fails the run.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from uuid import UUID

from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import ArtifactUpdate
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from prefect.context import FlowRunContext

from bqhold.tasks.core.progress import StagingView, progress_markdown
from bqhold.tasks.core.summary import RunSummary
from bqhold.tasks.core.summary_markdown import summary_markdown

logger = logging.getLogger("bqhold.artifacts")
PROGRESS_KEY = "bqhold-progress"
SUMMARY_KEY = "bqhold-summary"
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


def earlier_attempts_artifact(key: str) -> UUID | None:
    """The current flow run's newest artifact under `key`, made by an earlier attempt of it (a
    retry); None on a first attempt, without asking the API."""
    context = FlowRunContext.get()
    flow_run = context.flow_run if context else None
    if flow_run is None or flow_run.run_count <= 1:
        return None
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run.id]), key=ArtifactFilterKey(any_=[key])
            ),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0].id if found else None


def _replace(artifact_id: UUID, data: str, description: str) -> UUID:
    """Give an earlier attempt's artifact this attempt's content."""
    with get_client(sync_client=True) as client:
        client.update_artifact(artifact_id, ArtifactUpdate(data=data, description=description))
    return artifact_id


def keep(key: str, create: Callable[[], UUID], replace: Callable[[UUID], UUID]) -> UUID:
    """The artifact under `key` for this attempt: `replace` an earlier attempt's, else `create` it."""
    earlier = earlier_attempts_artifact(key)
    return create() if earlier is None else replace(earlier)


def start_progress(view: StagingView) -> UUID | None:
    """Create (on a retry: take over) the run's progress artifact."""
    try:
        return keep(
            PROGRESS_KEY,
            lambda: create_progress_artifact(view.percent, key=PROGRESS_KEY, description=progress_markdown(view)),
            lambda earlier: update_progress_artifact(earlier, view.percent, description=progress_markdown(view)),
        )
    except Exception as exc:  # a view must not fail the run
        logger.warning("could not create the progress artifact: %s", exc)
        return None


def update_progress(artifact_id: UUID | None, view: StagingView) -> None:
    """Move the progress artifact to `view` (its percentage and its description): one request."""
    if artifact_id is None:
        return
    try:
        update_progress_artifact(artifact_id, view.percent, description=progress_markdown(view))
    except Exception as exc:  # a view must not fail the run
        logger.warning("could not update the progress artifact: %s", exc)


def publish_summary(summary: RunSummary) -> None:
    """The summary as markdown (rows, places, time and memory, the next step); the agent's usage as a table."""
    try:
        markdown, description = summary_markdown(summary), f"bqhold run {summary.run_id}: {summary.status}"
        keep(
            SUMMARY_KEY,
            lambda: create_markdown_artifact(markdown, key=SUMMARY_KEY, description=description),
            lambda earlier: _replace(earlier, markdown, description),
        )
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
    description = f"Agent calls of bqhold run {summary.run_id}"
    keep(
        AGENT_KEY,
        lambda: create_table_artifact(rows, key=AGENT_KEY, description=description),
        lambda earlier: _replace(earlier, json.dumps(rows), description),
    )
