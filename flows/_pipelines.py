"""bqhold's flows, registered in one place: the CLI, the tests and the check of prefect.yaml read them here.

A pipeline is a module `flows/<name>.py` that defines `PIPELINE` (named `<name>`) and its flow
`<name>_flow = pipeline_flow(PIPELINE)`: adding the file registers it. The other flows work on
runs already in HOLD₂ and are listed below. Every flow follows one naming rule: `flows/<module>.py`
defines `<module>_flow`, whose Prefect name is `bqhold-<module>`.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from bqhold.tasks.core.errors import ConfigError

if TYPE_CHECKING:
    from prefect import Flow

FLOWS_DIR = Path(__file__).resolve().parent
COMMAND_LINE = "run"  # flows/run.py: the local command, not a flow


@dataclass(frozen=True)
class FlowEntry:
    """One flow of bqhold: where it is, and how it is deployed."""

    module: str  # flows/<module>.py
    scheduled: bool  # deployed with a schedule; else run on demand, given a run_id
    pipeline: bool = False  # HOLD₁ -> HOLD₂ -> warehouse; else a command on runs in HOLD₂
    options: tuple[str, ...] = ()  # a command's job options (a pipeline takes them all)

    @property
    def function(self) -> str:
        """The name the module binds the flow to."""
        return f"{self.module}_flow"

    @property
    def entrypoint(self) -> str:
        """The flow's entrypoint, as prefect.yaml writes it."""
        return f"flows/{self.module}.py:{self.function}"

    @property
    def flow_name(self) -> str:
        """The flow's name in Prefect (deployments are `<flow_name>/<deployment>`)."""
        return f"bqhold-{self.module}"

    def load_module(self) -> ModuleType:
        """The flow's module, imported."""
        return importlib.import_module(f"bqhold.flows.{self.module}")

    def load_flow(self) -> Flow:
        """The flow itself, or a ConfigError saying what its module must define."""
        found = getattr(self.load_module(), self.function, None)
        if found is None:
            raise ConfigError(f"flows/{self.module}.py must define {self.function} (= pipeline_flow(PIPELINE))")
        return found


# The commands on runs already in HOLD₂ (named by run id) take where the hold is and how to reach
# the warehouse a run was delivered to (by default that very one: see ON_RUN_DEFAULTS).
ON_RUN = (
    "hold_dir",
    "hold_url",
    "hold_lease_s",
    "warehouse",
    "bigquery_target",
    "staging_area",
    "gcp_credentials_block",
    "location",
    "max_retries",
)

# The flows that work on runs already in HOLD₂; cleanup's weekly dry run is the one scheduled.
RUN_COMMANDS = (
    FlowEntry("redeliver", scheduled=False, options=(*ON_RUN, "table", "staging_bucket")),
    FlowEntry("cleanup", scheduled=True, options=ON_RUN),
    FlowEntry("abandon", scheduled=False, options=(*ON_RUN, "table")),
    FlowEntry(
        "repair",
        scheduled=False,
        options=(
            "hold_dir",
            "hold_url",
            "hold_lease_s",
            "staging_area",
            "gcp_credentials_block",
            "max_retries",
            "max_record_bytes",
            "nesting",
            "null_markers",
        ),
    ),
)


def find_command(name: str) -> FlowEntry:
    """The registry entry of the command on runs named `name`."""
    return next(entry for entry in RUN_COMMANDS if entry.module == name)


def available() -> list[str]:
    """The names of the pipelines in flows/."""
    others = {entry.module for entry in RUN_COMMANDS} | {COMMAND_LINE}
    return sorted(p.stem for p in FLOWS_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem not in others)


def pipelines() -> tuple[FlowEntry, ...]:
    """The pipelines' flows (each deployed with a nightly schedule)."""
    return tuple(FlowEntry(name, scheduled=True, pipeline=True) for name in available())


def all_flows() -> tuple[FlowEntry, ...]:
    """Every flow of bqhold: the pipelines', then the commands on runs in HOLD₂."""
    return pipelines() + RUN_COMMANDS


def find_pipeline(name: str) -> FlowEntry:
    """The registry entry of pipeline `name`, or a ConfigError listing them."""
    entries = {entry.module: entry for entry in pipelines()}
    if name not in entries:
        raise ConfigError(f"unknown pipeline {name!r}; available: {', '.join(entries)}")
    return entries[name]


def pipeline_module(name: str) -> ModuleType:
    """The module of pipeline `name` (it defines PIPELINE and its flow), or a ConfigError listing them."""
    return find_pipeline(name).load_module()
