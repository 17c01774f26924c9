"""The staging area block: where HOLD₂ lives and how big its batches are."""

from __future__ import annotations

from prefect.blocks.core import Block
from pydantic import Field


class StagingArea(Block):
    """HOLD₂'s place and batch settings for a deployment (a persistent volume in the cloud)."""

    _block_type_name = "bqhold Staging Area"
    _description = "Where bqhold keeps HOLD₂ (segments, ledger, checkpoints, quarantine) and its batch sizing."

    hold_dir: str = Field(
        description="Directory of HOLD₂; must outlive the flow run (a mounted volume in a container)."
    )
    batch_size: int = Field(
        default=50_000, ge=1, description="Rows per batch, an upper bound the memory guard may lower."
    )
    memory_limit_mb: int | None = Field(
        default=None, ge=64, description="Memory budget; default: the container's limit."
    )
