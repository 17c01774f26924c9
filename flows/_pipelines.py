"""Where the pipelines are: one module each in flows/, found and loaded here and nowhere else."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from bqhold.tasks.core.errors import ConfigError

FLOWS_DIR = Path(__file__).resolve().parent
# Modules of flows/ that are not pipelines: the CLI and the flows that work on runs in HOLD₂.
NOT_PIPELINES = frozenset({"run", "redeliver", "cleanup", "abandon", "repair"})


def available() -> list[str]:
    """The names of the pipelines in flows/."""
    return sorted(p.stem for p in FLOWS_DIR.glob("*.py") if not p.stem.startswith("_") and p.stem not in NOT_PIPELINES)


def pipeline_module(name: str) -> ModuleType:
    """The module of pipeline `name` (it defines PIPELINE and its flow), or a ConfigError listing them."""
    names = available()
    if name not in names:
        raise ConfigError(f"unknown pipeline {name!r}; available: {', '.join(names)}")
    return importlib.import_module(f"bqhold.flows.{name}")
