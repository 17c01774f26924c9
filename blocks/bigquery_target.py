"""The BigQuery target block: where a deployment delivers, named once instead of six parameters."""

from __future__ import annotations

from typing import Literal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from bqhold.tasks.core.duckdb_types import identifier
from bqhold.tasks.core.staging_bucket import parse_staging_bucket
from bqhold.tasks.core.warehouse_url import parse_warehouse


class BigQueryTarget(Block):
    """A BigQuery dataset (and default table) bqhold delivers to, and how."""

    _block_type_name = "bqhold BigQuery Target"
    _description = "Where bqhold delivers: project, dataset, table, location, credentials and write options."

    project: str = Field(description="Google Cloud project that owns the dataset and runs the load jobs.")
    dataset: str = Field(description="BigQuery dataset; it must exist (bqhold creates tables, not datasets).")
    table: str | None = Field(default=None, description="Destination table; default: from the input's file name.")
    location: str | None = Field(default=None, description="Dataset location (e.g. EU, US); default: the client's.")
    credentials_block: str | None = Field(
        default=None,
        description="Name of a prefect-gcp GcpCredentials block; default: Application Default Credentials.",
    )
    schema_update: Literal["add", "refuse"] = Field(
        default="add", description="A new column mid-run: add it to the table, or refuse with its name."
    )

    staging_bucket: str | None = Field(
        default=None,
        description=(
            "Load through Cloud Storage: gs://BUCKET[/FOLDER], or the name of a prefect-gcp GcsBucket block."
            " Default: upload from the machine that runs the flow."
        ),
    )

    @field_validator("table")
    @classmethod
    def _table_is_plain(cls, value: str | None) -> str | None:
        if value is not None:
            identifier(value)
        return value

    @field_validator("staging_bucket")
    @classmethod
    def _staging_bucket_is_valid(cls, value: str | None) -> str | None:
        if value is not None:
            parse_staging_bucket(value)
        return value

    def warehouse_url(self) -> str:
        """The `bigquery://PROJECT/DATASET` URL of this target (validated)."""
        url = f"bigquery://{self.project}/{self.dataset}"
        parse_warehouse(url)
        return url
