"""Parse `--warehouse`: `duckdb:///abs/path.duckdb`, `duckdb://rel/path.duckdb`, `bigquery://PROJECT/DATASET`."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from bqhold.tasks.core.errors import ConfigError

_BQ_PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,61}[a-z0-9]$|^[a-z0-9.:-]{1,100}$")
_BQ_DATASET = re.compile(r"^[A-Za-z0-9_]{1,1024}$")


@dataclass(frozen=True)
class WarehouseTarget:
    """Where delivery goes: an embedded DuckDB file or a BigQuery dataset."""

    kind: str  # "duckdb" or "bigquery"
    path: Path | None = None
    project: str | None = None
    dataset: str | None = None

    def display(self) -> str:
        """The target as the user would write it."""
        if self.kind == "duckdb":
            return f"duckdb://{self.path}"
        return f"bigquery://{self.project}/{self.dataset}"


def parse_warehouse(url: str) -> WarehouseTarget:
    """The target a warehouse URL names, or a ConfigError saying what is wrong with it."""
    if url.startswith("duckdb://"):
        rest = url[len("duckdb://") :]
        if not rest or rest == "/":
            raise ConfigError(f"warehouse {url!r} names no file; e.g. duckdb:///tmp/warehouse.duckdb")
        # Absolute, so a run's recorded warehouse means the same file from any directory.
        return WarehouseTarget("duckdb", path=Path(os.path.abspath(os.path.expanduser(rest))))
    if url.startswith("bigquery://"):
        parts = url[len("bigquery://") :].strip("/").split("/")
        if len(parts) != 2 or not _BQ_PROJECT.fullmatch(parts[0]) or not _BQ_DATASET.fullmatch(parts[1]):
            raise ConfigError(f"warehouse {url!r} must be bigquery://PROJECT/DATASET")
        return WarehouseTarget("bigquery", project=parts[0], dataset=parts[1])
    raise ConfigError(f"warehouse {url!r} must start with duckdb:// or bigquery://")
