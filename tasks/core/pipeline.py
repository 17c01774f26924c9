"""What a pipeline is: a name, a pure transform and a few defaults."""

from __future__ import annotations

from dataclasses import dataclass

from bqhold.tasks.core.staging import Transform


@dataclass(frozen=True)
class Pipeline:
    """One pipeline: `transform` maps a batch's frame to the rows to stage.

    The transform receives records as read (nested objects as structs, a `__line` column with
    each record's source line) and returns a frame; the runner flattens what is still nested.
    Setting a `_quarantine_reason` column to a non-null text rejects that row.
    """

    name: str
    transform: Transform
    description: str
    default_key: str | None = None
