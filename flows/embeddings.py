"""An agent pipeline: each record's text embedded through an OpenAI-compatible `/v1/embeddings`
API (OpenAI, Azure OpenAI, vLLM, Ollama, LiteLLM, Hugging Face TEI).

The record's own fields are kept, flattened as the generic pipeline does, and its vector is added
as the column `embedding` (DOUBLE[] in DuckDB, REPEATED FLOAT64 in BigQuery). Records are
deduplicated by --key before any call, and one text is sent once per batch, so a duplicate is
never paid for; answers are kept as they arrive, so a resumed run never pays for one twice.

    python flows/run.py --pipeline embeddings --input docs.jsonl --key id \\
        --agent-url http://127.0.0.1:8000/v1 --agent-model text-embedding-3-small --text-field body
"""

from __future__ import annotations

from bqhold.flows._blocks import agent_api_key
from bqhold.flows._runner import pipeline_flow
from bqhold.flows.generic import transform
from bqhold.tasks.agents.openai_embeddings import OpenAIEmbeddings
from bqhold.tasks.core.agents.settings import limits_from
from bqhold.tasks.core.agents.spec import AgentLimits
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.pipeline import Pipeline

DEFAULT_MODEL = "text-embedding-3-small"
# OpenAI's embeddings API takes up to 2,048 inputs a request; 64 keeps one request small
# enough to retry cheaply and to split quickly when the service rejects one of its texts.
LIMITS = AgentLimits(concurrency=8, chunk_size=64, timeout_s=60, retries=5)


def build_agent(options: JobOptions) -> OpenAIEmbeddings:
    """The run's embeddings agent, from --agent-url, --agent-model, --text-field and the limits."""
    if not options.agent_url:
        raise ConfigError(
            "the embeddings pipeline needs --agent-url, the base URL of an OpenAI-compatible API "
            "(e.g. http://127.0.0.1:8000/v1 or https://api.openai.com/v1)"
        )
    return OpenAIEmbeddings(
        name="embeddings",
        limits=limits_from(options, LIMITS),
        price_per_million_tokens=options.agent_price_per_mtok,
        url=options.agent_url,
        model=options.agent_model or DEFAULT_MODEL,
        text_field=options.text_field,
        api_key=agent_api_key(options),
    )


PIPELINE = Pipeline(
    name="embeddings",
    transform=transform,
    description="Records with an embedding of their text, from an OpenAI-compatible API.",
    agent=build_agent,
)
embeddings_flow = pipeline_flow(PIPELINE)
