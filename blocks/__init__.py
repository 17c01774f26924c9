"""bqhold's Prefect blocks; register them with `prefect block register -m blocks`."""

from blocks.bigquery_target import BigQueryTarget
from blocks.staging_area import StagingArea

__all__ = ["BigQueryTarget", "StagingArea"]
