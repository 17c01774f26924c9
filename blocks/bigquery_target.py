"""The BigQuery target block: where a deployment delivers, named once instead of many parameters.

It composes prefect-gcp's blocks as prefect-gcp's own do: `gcp_credentials` is a GcpCredentials
block and `gcs_bucket` a GcsBucket block (the bucket loads go through), so the UI offers a picker
for each; a run loads them by their saved names. Project, dataset and table names are checked by
BigQuery's rules when the block is made (saved), not when a run first meets them.
"""

from __future__ import annotations

from typing import Any, Literal

from prefect.blocks.core import Block
from prefect_gcp.cloud_storage import GcsBucket
from prefect_gcp.credentials import GcpCredentials
from pydantic import Field, field_validator

from bqhold.tasks.core.bigquery_names import check_dataset, check_project
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import ClusterSpec, PartitionSpec, TableName, WriteMode, field_of

# Saved blocks from before the prefect-gcp blocks were fields named them by text; they still load.
_LEGACY_FIELDS = {"credentials_block": "gcp_credentials_block", "staging_bucket": "staging_bucket"}


def _name_of(block: Block | None, field: str) -> str | None:
    """The saved name of a block held in a field (a run loads it by that name)."""
    if block is None:
        return None
    if not block._block_document_name:  # made inline, not picked: Prefect keeps it inside this block's data
        raise ConfigError(
            f"the BigQueryTarget's {field} is not a saved block of its own: save it (e.g. "
            f"{type(block).__name__}(...).save('name')) and pick it in the BigQueryTarget block"
        )
    return block._block_document_name


class BigQueryTarget(Block):
    """A BigQuery dataset (and default table) bqhold delivers to, and how."""

    _block_type_name = "bqhold BigQuery Target"
    _description = "Where bqhold delivers: project, dataset, table, location, credentials, bucket and write options."

    project: str = Field(description="Google Cloud project that owns the dataset and runs the load jobs.")
    dataset: str = Field(description="BigQuery dataset; it must exist (bqhold creates tables, not datasets).")
    table: TableName = field_of("table")
    location: str | None = field_of("location")
    gcp_credentials: GcpCredentials | None = Field(
        None, description="prefect-gcp credentials for BigQuery and Cloud Storage (default: Application Default)."
    )
    gcs_bucket: GcsBucket | None = Field(
        None,
        description="load through this Cloud Storage bucket and folder (prefect-gcp GcsBucket; it brings its own"
        " credentials); default: upload from the machine that runs the flow.",
    )
    write_mode: WriteMode = field_of("write_mode")
    partition_by: PartitionSpec = field_of("partition_by")
    cluster_by: ClusterSpec = field_of("cluster_by")
    schema_update: Literal["add", "refuse"] = field_of("schema_update")

    @field_validator("project")
    @classmethod
    def _project_is_valid(cls, value: str) -> str:
        return check_project(value)

    @field_validator("dataset")
    @classmethod
    def _dataset_is_valid(cls, value: str) -> str:
        return check_dataset(value)

    def warehouse_url(self) -> str:
        """The `bigquery://PROJECT/DATASET` URL of this target."""
        return f"bigquery://{self.project}/{self.dataset}"

    def option_values(self) -> dict[str, Any]:
        """The job options this block sets (named as the options are)."""
        legacy = {option: (self.model_extra or {}).get(field) for field, option in _LEGACY_FIELDS.items()}
        return {
            "warehouse": self.warehouse_url(),
            "table": self.table,
            "location": self.location,
            "gcp_credentials_block": _name_of(self.gcp_credentials, "gcp_credentials")
            or legacy["gcp_credentials_block"],
            "staging_bucket": _name_of(self.gcs_bucket, "gcs_bucket") or legacy["staging_bucket"],
            "write_mode": self.write_mode,
            "partition_by": self.partition_by,
            "cluster_by": self.cluster_by,
            "schema_update": self.schema_update,
        }
