"""The interface every warehouse implements: create the table, load a group, count a run."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tasks.core.load_plan import LoadGroup
from tasks.core.schema import Schema


class Warehouse(Protocol):
    """A delivery target. Loads read HOLD₂ files and are idempotent per group."""

    max_group_bytes: int  # the most segment bytes one load may carry

    def describe(self) -> str:
        """Where the data goes, for messages (never a secret)."""

    def load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], delivery: int = 0) -> int:
        """Load `files` (the group's segments) into `table`; return the rows loaded for them.

        Loading the same group again (same delivery) must not duplicate it.
        """

    def counts(self, table: str, run_id: str) -> dict[int, int]:
        """The warehouse's own row count per batch of `run_id`."""

    def remove(self, table: str, run_id: str, batches: list[int]) -> None:
        """Delete what the warehouse holds for these batches of a run (before redelivering)."""

    def close(self) -> None:
        """Release connections."""
