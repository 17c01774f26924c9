"""The interface every warehouse implements: create the table, load a group, fingerprint a run."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.load_plan import LoadGroup
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.core.write_modes import WriteMode


class Warehouse(Protocol):
    """A delivery target. Loads read HOLD₂ files and are idempotent per group."""

    max_group_bytes: int  # the most segment bytes one load may carry

    def describe(self) -> str:
        """Where the data goes, for messages (never a secret)."""

    def load(self, table: str, schema: Schema, group: LoadGroup, files: list[Path], delivery: int = 0) -> int:
        """Load `files` (the group's segments) into `table`; return the rows loaded for them.

        Loading the same group again (same delivery) must not duplicate it.
        """

    def fingerprints(self, table: str, run_id: str) -> dict[int | None, Fingerprint]:
        """The warehouse's own row count and SUM(_row_hash) per batch of `run_id`, in one query
        (key None: rows of the run without a batch); empty when the table does not exist."""

    def remove(self, table: str, run_id: str, keep: list[int]) -> None:
        """Delete the run's rows in batches outside `keep`, and those without a batch (before a
        redelivery); a missing table has none."""

    def publish(self, mode: WriteMode, table: str, staging: str, schema: Schema, key: tuple[str, ...] | None) -> None:
        """Make `table` hold the verified rows of `staging` (a run's staging table) by `mode`:
        merge on `key`, or replace; atomic, and idempotent."""

    def table_counts(self, table: str, key: tuple[str, ...] | None = None) -> tuple[int, int | None]:
        """The table's rows, and its distinct values of `key` (None without one)."""

    def drop(self, table: str) -> None:
        """Drop `table` if it exists."""

    def close(self) -> None:
        """Release connections."""
