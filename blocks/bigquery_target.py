"""The BigQuery target block: where a deployment delivers, named once instead of six parameters."""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from pydantic import Field, field_validator

from bqhold.tasks.core.bigquery_names import check_dataset, check_project
from bqhold.tasks.core.options import StagingBucketSpec, TableName, field_of
from bqhold.tasks.core.warehouse_url import parse_warehouse


class BigQueryTarget(Block):
    """A BigQuery dataset (and default table) bqhold delivers to, and how."""

    _block_type_name = "bqhold BigQuery Target"
    _description = "Where bqhold delivers: project, dataset, table, location, credentials and write options."

    project: str = Field(description="Google Cloud project that owns the dataset and runs the load jobs.")
    dataset: str = Field(description="BigQuery dataset; it must exist (bqhold creates tables, not datasets).")
    table: TableName = field_of("table")
    location: str | None = field_of("location")
    # Named before the option (gcp_credentials_block) was; saved blocks keep working.
    credentials_block: str | None = field_of("gcp_credentials_block")
    schema_update: Literal["add", "refuse"] = field_of("schema_update")
    staging_bucket: StagingBucketSpec = field_of("staging_bucket")

    @field_validator("project")
    @classmethod
    def _project_is_valid(cls, value: str) -> str:
        return check_project(value)

    @field_validator("dataset")
    @classmethod
    def _dataset_is_valid(cls, value: str) -> str:
        return check_dataset(value)

    def warehouse_url(self) -> str:
        """The `bigquery://PROJECT/DATASET` URL of this target (validated)."""
        url = f"bigquery://{self.project}/{self.dataset}"
        parse_warehouse(url)
        return url

    def option_values(self) -> dict[str, Any]:
        """The job options this block sets (named as the options are)."""
        return {
            "warehouse": self.warehouse_url(),
            "table": self.table,
            "location": self.location,
            "gcp_credentials_block": self.credentials_block,
            "schema_update": self.schema_update,
            "staging_bucket": self.staging_bucket,
        }
