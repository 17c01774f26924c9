"""What every embeddings agent shares: it reads one text field of each record (`--text-field`)
and adds its vector as the column `embedding`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bqhold.tasks.core.agents.spec import Agent
from bqhold.tasks.core.column_types import FLOAT64_ARRAY
from bqhold.tasks.core.flatten import field_path, field_value

EMBEDDING = "embedding"


@dataclass
class TextEmbedder(Agent):
    """Embeds the text in field `text_field` (dotted for nested, as the user named it)."""

    text_field: str = "text"

    def __post_init__(self) -> None:
        self.outputs = {EMBEDDING: FLOAT64_ARRAY}
        self.text_path = field_path(self.text_field)  # once, not for every record

    def input_of(self, record: Mapping[str, Any]) -> str | None:
        text = field_value(record, self.text_path)
        return None if text is None or str(text).strip() == "" else str(text)

    def missing_input(self) -> str:
        return f"no text in field '{self.text_field}' to embed (--text-field)"
