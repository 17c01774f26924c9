"""The staging area block: where HOLD₂ lives and how big its batches are."""

from __future__ import annotations

from typing import Any

from prefect.blocks.core import Block

from bqhold.tasks.core.options import HoldUrl, field_of


class StagingArea(Block):
    """HOLD₂'s place and batch settings for a deployment (in the cloud: a bucket prefix, hold_url)."""

    _block_type_name = "bqhold Staging Area"
    _description = "Where bqhold keeps HOLD₂ (segments, ledger, checkpoints, quarantine) and its batch sizing."

    hold_dir: str = field_of(
        "hold_dir",
        default=...,
        description="Directory of HOLD₂; without hold_url it must outlive the flow run (a mounted volume in a"
        " container), with it any local directory (a working copy).",
    )
    hold_url: HoldUrl = field_of(
        "hold_url",
        description="Durable HOLD₂ in Cloud Storage, gs://BUCKET/PREFIX: hold_dir is then only a working copy, rebuilt"
        " from it in a new container (no volume needed).",
    )
    batch_size: int = field_of("batch_size")
    memory_limit_mb: int | None = field_of("memory_limit_mb")

    def option_values(self) -> dict[str, Any]:
        """The job options this block sets (named as the options are)."""
        return {
            "hold_dir": self.hold_dir,
            "hold_url": self.hold_url,
            "batch_size": self.batch_size,
            "memory_limit_mb": self.memory_limit_mb,
        }
