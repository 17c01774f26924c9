"""Every option of a job, declared once: its type, default, bounds and help.

The CLI's flags (flows/_flags.py), the flows' parameters (flows/_parameters.py, what the Prefect
UI shows as a deployment's form) and the blocks' fields (blocks/) are all derived from the
fields below, and so is every "bad value" message. Adding an option is one field here (in the
group of its concern) plus the code that uses it.

An option named nowhere keeps its declared default. A value set explicitly (a flag, a flow
parameter that differs from its default) beats the value of a block the run names.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from bqhold.tasks.core.bigquery_names import check_table
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.flatten import Nesting, field_column, table_name
from bqhold.tasks.core.layout import SegmentFormat
from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES
from bqhold.tasks.core.staging_bucket import parse_gs_url, parse_staging_bucket
from bqhold.tasks.core.table_options import parse_clustering, parse_partitioning
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.core.write_modes import WriteMode

DEFAULT_HOLD_DIR = "bqhold-data/hold"
DEFAULT_WAREHOUSE = "duckdb://bqhold-data/warehouse.duckdb"


def _parsed_by(parse: Callable[[str], object]) -> AfterValidator:
    """Validation by one of bqhold's parsers, whose ConfigError passes through pydantic unchanged."""

    def check(value: str | None) -> str | None:
        if value is not None:
            parse(value)
        return value

    return AfterValidator(check)


WarehouseUrl = Annotated[str | None, _parsed_by(parse_warehouse)]
StagingBucketSpec = Annotated[str | None, _parsed_by(parse_staging_bucket)]  # also BigQueryTarget's
TableName = Annotated[str | None, _parsed_by(check_table)]  # also BigQueryTarget's
PartitionSpec = Annotated[str | None, _parsed_by(parse_partitioning)]  # also BigQueryTarget's
ClusterSpec = Annotated[str | None, _parsed_by(parse_clustering)]  # also BigQueryTarget's
HoldUrl = Annotated[str | None, _parsed_by(lambda value: parse_gs_url(value, "--hold-url"))]  # also StagingArea's


class OptionGroup(BaseModel):
    """Options of one concern; the class docstring is the group's title in `--help`."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class SourceOptions(OptionGroup):
    """What is read and where it goes."""

    input: str = Field(
        "",
        description="HOLD₁ file or glob (.jsonl/.ndjson/.json, .csv, .parquet; .gz or .zst compressed), objects"
        " gs://BUCKET/PATTERN, or a DuckDB table duckdb:///file.duckdb?table=NAME",
    )
    table: TableName = Field(
        None,
        description="destination table, any name BigQuery accepts (Orders, orders-2026); default: from the input's"
        " file name",
    )
    key: str | None = Field(None, description="dedupe key field (dotted for nested: user.id); default: the pipeline's")
    string_columns: frozenset[str] = Field(
        frozenset(),
        description="stage these fields (FIELD,...) as text whatever their values (widens a typed column to STRING)",
    )
    null_markers: frozenset[str] = Field(
        frozenset(),
        description="CSV: field text that means null besides an empty field (MARKER,...), e.g. NA,NULL",
    )
    nesting: Nesting = Field(
        "record",
        description="what a nested object becomes: record (a RECORD column, BigQuery's STRUCT), flatten (a column"
        " per field, user__address__city) or json (a JSON column); arrays are REPEATED columns either way",
    )
    max_record_bytes: int = Field(
        DEFAULT_MAX_RECORD_BYTES,
        ge=1024,
        description="a record larger than this is quarantined whole, never read into memory (BigQuery's largest"
        " JSON row)",
    )
    max_error_rate: float = Field(0.05, ge=0, le=1, description="stop when more than this share of a batch is bad")
    parser: Literal["fast", "exact"] = Field(
        "fast",
        description="JSONL parsing: fast (pyarrow with the schema of earlier batches; a batch it cannot vouch for"
        " is parsed exactly, the result is the same) or exact (the reference parser for every batch, to rule the"
        " fast one out)",
    )


class StagingOptions(OptionGroup):
    """HOLD₂: where batches are staged and which run they belong to."""

    hold_dir: Path = Field(
        Path(DEFAULT_HOLD_DIR),
        description="where HOLD₂, checkpoints and quarantine live (with --hold-url: its working copy on this machine)",
    )
    hold_url: HoldUrl = Field(
        None,
        description="keep HOLD₂ durable in Cloud Storage, gs://BUCKET/PREFIX: a run on a machine with an empty"
        " --hold-dir (a new container, a retry) rebuilds it from there and resumes; one run at a time",
    )
    hold_lease_s: float = Field(
        60.0,
        ge=1,
        description="with --hold-url: a run that stopped renewing its lease (a dead container) is taken over"
        " after this many seconds",
    )
    batch_size: int = Field(50_000, ge=1, description="rows per batch, an upper bound the memory guard may lower")
    run_id: str | None = Field(None, description="name the run; re-running an unfinished run resumes it")
    fresh: bool = Field(False, description="start a new run even if an unfinished one exists (old HOLD₂ is kept)")
    summary_json: str | None = Field(None, description="also write the run summary as JSON to this path")
    segment_format: SegmentFormat = Field(
        "parquet",
        description="how HOLD₂ keeps each batch's rows: parquet (compact, typed, loads natively) or jsonl (readable"
        " with head)",
    )


class MemoryOptions(OptionGroup):
    """Memory: the budget and when the guard acts."""

    memory_limit_mb: int | None = Field(
        None, ge=64, description="memory budget in MB (default: the container's limit, else the machine's)"
    )
    memory_threshold: float = Field(
        80.0, ge=10, le=95, description="memory guard warning level, percent (critical: 10 points higher)"
    )


class DeliveryOptions(OptionGroup):
    """Delivery: the warehouse, and BigQuery's settings."""

    # None only where a command on an existing run means "the warehouse the run was delivered to".
    warehouse: WarehouseUrl = Field(
        DEFAULT_WAREHOUSE,
        description="duckdb:///path.duckdb or bigquery://PROJECT/DATASET (for a command on a run: the run's own)",
    )
    gcp_credentials_block: str | None = Field(
        None, description="name of a prefect-gcp GcpCredentials block (default: Application Default Credentials)"
    )
    location: str | None = Field(None, description="the BigQuery dataset's location, e.g. EU (default: the client's)")
    schema_update: Literal["add", "refuse"] = Field(
        "add", description="a column new to the table, or an INT64 one widening to FLOAT64: do it, or refuse"
    )
    staging_bucket: StagingBucketSpec = Field(
        None,
        description="load through Cloud Storage: gs://BUCKET[/FOLDER], or the name of a prefect-gcp GcsBucket block"
        " (default: upload from the machine that runs the flow)",
    )
    job_timeout_s: float = Field(3600.0, gt=0, description="cancel a BigQuery load job still running after this long")
    write_mode: WriteMode = Field(
        "append",
        description="append (add the run's rows), merge (on --key: a key delivered before is updated, not added"
        " again) or replace (the table holds exactly the run's rows; a run reads all of its input)",
    )
    partition_by: PartitionSpec = Field(
        None,
        description="partition a new table: COLUMN[:DAY|HOUR|MONTH|YEAR], _PARTITIONTIME[:UNIT] (ingestion time) or"
        " COLUMN:RANGE(START,END,INTERVAL); an existing table must have it (BigQuery; DuckDB has no partitions)",
    )
    cluster_by: ClusterSpec = Field(
        None, description="cluster a new table by these columns (A,B; at most 4); an existing table must have them"
    )


class RetryOptions(OptionGroup):
    """Retries of transient errors (docs/design.md, retry layers)."""

    max_retries: int = Field(
        3,
        ge=0,
        description="retries of one failed request to BigQuery or Cloud Storage (and of each piece of an upload)"
        " before it fails; load jobs and Prefect tasks have their own small retries above it",
    )


class AgentOptions(OptionGroup):
    """Agents: the service an agent pipeline calls per record, and how hard (default: the pipeline's)."""

    agent_url: str | None = Field(
        None,
        description="the base URL of the agent's OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1 or"
        " https://api.openai.com/v1",
    )
    agent_model: str | None = Field(None, description="the model the agent asks for (default: the pipeline's)")
    agent_api_key_block: str | None = Field(
        None,
        description="name of a Prefect Secret block holding the agent's API key (default: the BQHOLD_AGENT_API_KEY"
        " environment variable)",
    )
    text_field: str = Field("text", description="the record field an agent reads (dotted for nested: doc.body)")
    agent_concurrency: int | None = Field(None, ge=1, description="most calls in flight (halved while throttled)")
    agent_rps: float | None = Field(None, gt=0, description="most calls started in any second")
    agent_rpm: float | None = Field(None, gt=0, description="most calls started in any minute")
    agent_tpm: float | None = Field(None, gt=0, description="most tokens sent in any minute (estimated before a call)")
    agent_chunk_size: int | None = Field(None, ge=1, description="records per call")
    agent_timeout_s: float | None = Field(None, gt=0, description="give up on a call after this long, and retry it")
    agent_retries: int | None = Field(
        None,
        ge=0,
        description="retries of one call (throttled, unavailable, timed out) before the run stops, resumably",
    )
    agent_price_per_mtok: float | None = Field(
        None, ge=0, description="price per million tokens, for the estimated cost in the summary"
    )


class BlockOptions(OptionGroup):
    """Blocks: settings saved once in Prefect and named by a run."""

    bigquery_target: str | None = Field(
        None, description="name of a BigQueryTarget block (project, dataset, table, location, credentials)"
    )
    staging_area: str | None = Field(None, description="name of a StagingArea block (hold dir, batch size, memory)")


GROUPS: tuple[type[OptionGroup], ...] = (
    SourceOptions,
    StagingOptions,
    MemoryOptions,
    DeliveryOptions,
    RetryOptions,
    AgentOptions,
    BlockOptions,
)


class JobOptions(*GROUPS):
    """Everything a run needs to know, validated on construction (see `options_from`)."""

    @field_validator("string_columns", mode="before")
    @classmethod
    def _columns_from_text(cls, value: Any) -> Any:
        return parse_string_columns(value) if value is None or isinstance(value, str) else value

    @field_validator("null_markers", mode="before")
    @classmethod
    def _markers_from_text(cls, value: Any) -> Any:
        return frozenset(comma_list(value)) if value is None or isinstance(value, str) else value

    def explicit(self, name: str) -> bool:
        """Whether option `name` was given a value of its own (neither None nor its default)."""
        return getattr(self, name) not in (None, declared(name).default)

    def check_combination(self) -> JobOptions:
        """`self` if its options make sense together (blocks applied), else a ConfigError."""
        if self.staging_bucket and (self.warehouse or "").startswith("duckdb://"):
            raise ConfigError("--staging-bucket applies to BigQuery warehouses only (bigquery://PROJECT/DATASET)")
        if self.write_mode == "merge" and not self.key:
            raise ConfigError("--write-mode merge updates rows by their key: name it with --key")
        return self


ALL_OPTIONS: tuple[str, ...] = tuple(name for group in GROUPS for name in group.model_fields)
BOUNDS = ("ge", "le", "gt")


def declared(name: str) -> FieldInfo:
    """The declaration of option `name`."""
    return JobOptions.model_fields[name]


def field_of(name: str, **changes: Any) -> Any:
    """A pydantic field with option `name`'s default, help and bounds, for another model that holds
    the option (a block), with `changes` (e.g. `default=...` to make it required)."""
    option = declared(name)
    bounds = {bound: getattr(m, bound) for m in option.metadata for bound in BOUNDS if hasattr(m, bound)}
    settings = {"default": option.default, "description": option.description, **bounds}
    return Field(**{**settings, **changes})


def group_of(name: str) -> type[OptionGroup]:
    """The group that declares option `name`."""
    return next(group for group in GROUPS if name in group.model_fields)


def flag(name: str) -> str:
    """The CLI flag of option `name`: `batch_size` -> `--batch-size` (messages name it)."""
    return "--" + name.replace("_", "-")


def options_from(values: dict[str, Any]) -> JobOptions:
    """Validated options from named values (flags, flow parameters); a ConfigError naming the
    first bad one, as its flag, otherwise."""
    try:
        return JobOptions(**values)
    except ValidationError as exc:
        raise ConfigError(_explain(exc.errors()[0])) from None


def _explain(error: dict[str, Any]) -> str:
    """One line for a pydantic error: `--batch-size must be at least 1, got 0`."""
    name = str(error["loc"][0]) if error["loc"] else ""
    if name not in JobOptions.model_fields:
        return f"unknown option {name!r}" if error["type"] == "extra_forbidden" else error["msg"]
    field, got = declared(name), error.get("input")
    wrong_kind = error["type"].endswith(("_parsing", "_type"))
    return f"{flag(name)} must be {_kind(field) if wrong_kind else _allowed(field)}, got {got!r}"


def _kind(field: FieldInfo) -> str:
    """What kind of value option `field` takes, in words."""
    return {int: "a whole number", float: "a number", bool: "true or false"}.get(base_type(field), "text")


def _allowed(field: FieldInfo) -> str:
    """What option `field` accepts, in words: `at least 1`, `0-1`, `add or refuse`, `a number`."""
    ge, le, gt = (next((getattr(m, bound) for m in field.metadata if hasattr(m, bound)), None) for bound in BOUNDS)
    if ge is not None and le is not None:
        return f"{ge:g}-{le:g}"
    if ge is not None:
        return f"at least {ge:g}"
    if gt is not None:
        return f"more than {gt:g}"
    return " or ".join(literal_choices(field)) or _kind(field)


def base_type(field: FieldInfo) -> type:
    """The type an option is written in: `int | None` -> int; choices, paths and lists of
    names (FIELD,...) -> str."""
    annotation = field.annotation
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        annotation = next(arg for arg in typing.get_args(annotation) if arg is not type(None))
    if typing.get_origin(annotation) in (Literal, frozenset) or annotation is Path:
        return str
    return annotation


def literal_choices(field: FieldInfo) -> tuple[str, ...]:
    """The values of a `Literal[...]` option, else ()."""
    return typing.get_args(field.annotation) if typing.get_origin(field.annotation) is Literal else ()


def default_table(input_spec: str) -> str:
    """A table name from the input's file name: `data/Orders-2026.jsonl` -> `orders_2026` (a
    DuckDB table's own name: `duckdb:///src.duckdb?table=events` -> `events`)."""
    if "?table=" in input_spec:
        return table_name(input_spec.rsplit("?table=", 1)[1].split(".")[-1] or "records")
    stem = Path(input_spec.replace("*", "").rstrip("/")).name.split(".")[0]
    return table_name(stem or "records")


def comma_list(text: str | None) -> list[str]:
    """The items of an option written `A,B,...` (blanks around and empty items dropped)."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def parse_string_columns(fields: str | None) -> frozenset[str]:
    """The columns `--string-columns user.zip,phone` names (`user__zip`, `phone`)."""
    return frozenset(field_column(part) for part in comma_list(fields))
