"""The README's automation (README, "Be told when a run fails") is one Prefect 3.8.8 accepts, and
its trigger fires for exactly the flow runs it says: a bqhold flow run ending Failed or Crashed,
not a run of another flow, not a run that completed. Checked with the server's own models."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from uuid import uuid4

import yaml
from prefect.events.schemas.automations import AutomationCore as ClientAutomation
from prefect.server.events.schemas.automations import AutomationCore
from prefect.server.events.schemas.events import ReceivedEvent

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_automation() -> dict:
    """The YAML after `<!-- automation -->`, with a block id in place of BLOCK_ID."""
    (block,) = re.findall(r"<!-- automation -->\n```yaml\n(.*?)```", README.read_text(), flags=re.S)
    return yaml.safe_load(block.replace("BLOCK_ID", str(uuid4())))


def state_change(flow: str, state: str) -> ReceivedEvent:
    """The event the server emits when a flow run of `flow` enters `state` (its related resources
    as prefect/server/models/events.py names them)."""
    run_id = uuid4()
    return ReceivedEvent(
        occurred=datetime.now(UTC),
        event=f"prefect.flow-run.{state}",
        resource={"prefect.resource.id": f"prefect.flow-run.{run_id}", "prefect.resource.name": "cheerful-otter"},
        related=[
            {
                "prefect.resource.id": f"prefect.flow.{uuid4()}",
                "prefect.resource.role": "flow",
                "prefect.resource.name": flow,
            },
            {
                "prefect.resource.id": f"prefect.deployment.{uuid4()}",
                "prefect.resource.role": "deployment",
                "prefect.resource.name": "generic-self-hosted",
            },
        ],
        id=uuid4(),
    )


def test_the_readme_automation_is_valid_for_prefect_cli_and_server():
    data = readme_automation()
    ClientAutomation.model_validate(data)  # what `prefect automation create --from-file` sends
    automation = AutomationCore.model_validate(data)  # what the server accepts (templates checked)
    (action,) = automation.actions
    assert action.type == "send-notification"
    assert "flow_run.state.message" in action.body and "ui_url" in action.body


def test_it_fires_for_a_failed_or_crashed_bqhold_run_only():
    trigger = AutomationCore.model_validate(readme_automation()).trigger
    assert trigger.covers(state_change("bqhold-generic", "Failed"))
    assert trigger.covers(state_change("bqhold-redeliver", "Crashed"))
    assert not trigger.covers(state_change("bqhold-generic", "Completed"))
    assert not trigger.covers(state_change("bqhold-generic", "Cancelled"))  # a stop asked for
    assert not trigger.covers(state_change("nightly-report", "Failed"))
    assert trigger.immediate  # one notification per run, as it ends
