"""Where things live in a hold directory; every name follows from (run, batch).

<hold>/hold.duckdb                          ledger, staged columns, dedupe keys, runs
<hold>/runs/<run_id>/checkpoint.json        the run's checkpoint (< 1 KB)
<hold>/runs/<run_id>/segments/batch-000007.parquet   batch 7's staged records (or .jsonl)
<hold>/runs/<run_id>/quarantine/batch-000007.jsonl   batch 7's rejected records
<hold>/runs/<run_id>/quarantine/batch-000007-line-42.bin   one of them over 1 MiB, as it was
<hold>/runs/<run_id>/summary.json           the last summary of the run
<hold>/replays/batch-000007-1a2b3c4d.jsonl  the input of a replay of a (fixed) quarantine file
<hold>/spool/1a2b3c4d5e6f7a8b-events.jsonl  the plain copy of a compressed or gs:// input being read
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from bqhold.tasks.core.errors import ConfigError

SegmentFormat = Literal["parquet", "jsonl"]  # also the segment file's suffix

_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def check_run_id(run_id: str) -> str:
    """`run_id` if it is usable in file names and job ids, else a ConfigError."""
    if not _RUN_ID.fullmatch(run_id):
        raise ConfigError(
            f"run id {run_id!r} must be 1-100 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


@dataclass(frozen=True)
class HoldLayout:
    """Paths inside one hold directory."""

    root: Path

    @property
    def database(self) -> Path:
        """HOLD₂'s DuckDB file."""
        return self.root / "hold.duckdb"

    @property
    def spool_dir(self) -> Path:
        """Where plain copies of compressed and Cloud Storage inputs are read from (tasks/core/spool.py)."""
        return self.root / "spool"

    def run_dir(self, run_id: str) -> Path:
        """The directory of one run's files."""
        return self.root / "runs" / check_run_id(run_id)

    def checkpoint(self, run_id: str) -> Path:
        """The run's checkpoint file."""
        return self.run_dir(run_id) / "checkpoint.json"

    def summary(self, run_id: str) -> Path:
        """The run's last summary."""
        return self.run_dir(run_id) / "summary.json"

    def segments_dir(self, run_id: str) -> Path:
        """Where the run's segment files are."""
        return self.run_dir(run_id) / "segments"

    def quarantine_dir(self, run_id: str) -> Path:
        """Where the run's quarantine files are."""
        return self.run_dir(run_id) / "quarantine"

    def segment(self, run_id: str, batch: int, fmt: SegmentFormat) -> Path:
        """The segment file of one batch, in format `fmt` (its suffix)."""
        return self.segments_dir(run_id) / f"batch-{batch:06d}.{fmt}"

    def quarantine(self, run_id: str, batch: int) -> Path:
        """The quarantine file of one batch."""
        return self.quarantine_dir(run_id) / f"batch-{batch:06d}.jsonl"
