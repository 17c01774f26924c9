"""Open HOLD₂ for a flow run: the local hold dir, or the working copy of a durable HOLD₂ whose
lease names this flow run (a run it refuses is told which)."""

from __future__ import annotations

from prefect.runtime import flow_run

from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.warehouses import open_hold


def hold_for(options: JobOptions, command: str) -> HoldStore:
    """HOLD₂ as `options` name it, opened by `command` (a pipeline's name, or `cleanup`, ...)."""
    name = flow_run.get_name()
    return open_hold(options, f"{command} (flow run {name})" if name else command)
