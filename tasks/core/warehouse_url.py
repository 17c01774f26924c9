"""Parse `--warehouse`: `duckdb:///abs/path.duckdb`, `duckdb://rel/path.duckdb`, `bigquery://PROJECT/DATASET`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from bqhold.tasks.core.bigquery_names import check_dataset, check_project
from bqhold.tasks.core.errors import ConfigError


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
        if len(parts) != 2:
            raise ConfigError(f"warehouse {url!r} must be bigquery://PROJECT/DATASET")
        try:
            return WarehouseTarget("bigquery", project=check_project(parts[0]), dataset=check_dataset(parts[1]))
        except ConfigError as exc:
            raise ConfigError(f"warehouse {url!r}: {exc}") from None
    raise ConfigError(f"warehouse {url!r} must start with duckdb:// or bigquery://")
