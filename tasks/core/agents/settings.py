"""An agent pipeline's settings from the job's options: the limits the user overrides (each
`--agent-*` option not given keeps the pipeline's declared value), and the refusal of agent
options for a pipeline without an agent."""

from __future__ import annotations

from dataclasses import replace

from bqhold.tasks.core.agents.spec import AgentLimits
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import AgentOptions, JobOptions, flag

# Option -> the AgentLimits field it overrides.
LIMIT_OPTIONS = {
    "agent_concurrency": "concurrency",
    "agent_rps": "requests_per_second",
    "agent_rpm": "requests_per_minute",
    "agent_tpm": "tokens_per_minute",
    "agent_chunk_size": "chunk_size",
    "agent_timeout_s": "timeout_s",
    "agent_retries": "retries",
}


def limits_from(options: JobOptions, declared: AgentLimits) -> AgentLimits:
    """The pipeline's declared limits, with those the options set."""
    given = {field: getattr(options, name) for name, field in LIMIT_OPTIONS.items()}
    return replace(declared, **{field: value for field, value in given.items() if value is not None})


def refuse_agent_options(options: JobOptions, pipeline: str) -> None:
    """A ConfigError when agent options are given to a pipeline that calls no agent (they would do nothing)."""
    given = [flag(name) for name in AgentOptions.model_fields if options.explicit(name)]
    if given:
        raise ConfigError(
            f"{', '.join(given)} applies to agent pipelines only, and pipeline {pipeline!r} calls no agent; "
            "pick an agent pipeline with --pipeline (e.g. embeddings)"
        )
