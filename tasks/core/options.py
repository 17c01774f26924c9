"""The options of a job run, validated once, shared by the CLI, the flows and deployments."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.flatten import field_column, table_name
from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES
from bqhold.tasks.core.staging_bucket import parse_staging_bucket

DEFAULT_HOLD_DIR = "bqhold-data/hold"
DEFAULT_WAREHOUSE = "duckdb://bqhold-data/warehouse.duckdb"
DEFAULT_BATCH_SIZE = 50_000
DEFAULT_JOB_TIMEOUT_S = 3600.0


@dataclass(frozen=True)
class JobOptions:
    """Everything a run needs to know, after validation."""

    input: str
    table: str
    key: str | None = None
    hold_dir: Path = Path(DEFAULT_HOLD_DIR)
    warehouse: str = DEFAULT_WAREHOUSE
    batch_size: int = DEFAULT_BATCH_SIZE
    run_id: str | None = None
    fresh: bool = False
    memory_limit_mb: int | None = None
    memory_threshold: float = 80.0  # percent: warn here, critical 10 points higher
    max_retries: int = 3
    max_error_rate: float = 0.05
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
    summary_json: str | None = None
    gcp_credentials_block: str | None = None  # BigQuery: a prefect-gcp GcpCredentials block name
    location: str | None = None  # BigQuery: the dataset's location
    schema_update: str = "add"  # BigQuery: a new column mid-run is "add"ed or "refuse"d
    staging_bucket: str | None = None  # BigQuery: gs://BUCKET[/FOLDER] or a GcsBucket block; load by URI
    string_columns: frozenset[str] = frozenset()  # columns staged as STRING whatever their values hold
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S  # BigQuery: a load job running longer is cancelled


def default_table(input_spec: str) -> str:
    """A table name from the input's file name: `data/Orders-2026.jsonl` -> `orders_2026`."""
    stem = Path(input_spec.replace("*", "").rstrip("/")).name.split(".")[0]
    return table_name(stem or "records")


def parse_string_columns(fields: str | None) -> frozenset[str]:
    """The columns `--string-columns user.zip,phone` names (`user__zip`, `phone`)."""
    return frozenset(field_column(part.strip()) for part in (fields or "").split(",") if part.strip())


def validate(options: JobOptions) -> JobOptions:
    """`options` unchanged if usable, else a ConfigError naming the bad one."""
    checks = [
        (options.batch_size >= 1, f"--batch-size must be at least 1, got {options.batch_size}"),
        (
            options.memory_limit_mb is None or options.memory_limit_mb >= 64,
            f"--memory-limit-mb must be at least 64, got {options.memory_limit_mb}",
        ),
        (
            10 <= options.memory_threshold <= 95,
            f"--memory-threshold must be 10-95 (percent), got {options.memory_threshold}",
        ),
        (options.max_retries >= 0, f"--max-retries must be 0 or more, got {options.max_retries}"),
        (options.job_timeout_s > 0, f"--job-timeout-s must be more than 0, got {options.job_timeout_s}"),
        (0 <= options.max_error_rate <= 1, f"--max-error-rate must be 0-1, got {options.max_error_rate}"),
        (options.max_record_bytes >= 1024, f"--max-record-bytes must be at least 1024, got {options.max_record_bytes}"),
        (
            options.schema_update in ("add", "refuse"),
            f"--schema-update must be add or refuse, got {options.schema_update!r}",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    if options.staging_bucket:
        parse_staging_bucket(options.staging_bucket)
        if options.warehouse.startswith("duckdb://"):
            raise ConfigError("--staging-bucket applies to BigQuery warehouses only (bigquery://PROJECT/DATASET)")
    return options
