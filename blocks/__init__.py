"""bqhold's Prefect blocks; register them with `prefect block register -m bqhold.blocks`."""

from typing import TypeVar

from prefect.blocks.core import Block

from bqhold.blocks.bigquery_target import BigQueryTarget
from bqhold.blocks.staging_area import StagingArea
from bqhold.tasks.core.errors import ConfigError

__all__ = ["BigQueryTarget", "StagingArea", "load_block"]
B = TypeVar("B", bound=Block)


def load_block(block_class: type[B], name: str) -> B:
    """The saved block of this type named `name`, or a ConfigError saying there is none."""
    try:
        return block_class.load(name)
    except ValueError as exc:
        raise ConfigError(f"no {block_class.get_block_type_name()} block named {name!r}: {exc}") from exc
