"""The embeddings pipeline as a run would stage a file: its records' own fields flattened, and
each text's vector from a real local OpenAI-compatible service (tests/agent_service.py)."""

from __future__ import annotations

import json

import pytest

from bqhold.flows.embeddings import PIPELINE
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import options_from
from bqhold.tasks.core.pipeline import preview
from tests.agent_service import EmbeddingService, ServiceBehaviour, fake_embedding

DOCS = [
    {"id": 1, "doc": {"title": "a", "body": "the first text"}},
    {"id": 2, "doc": {"title": "b", "body": "the second text"}},
    {"id": 3, "doc": {"title": "c", "body": "REJECT this one"}},
    {"id": 4, "doc": {"title": "d"}},
    {"id": 1, "doc": {"title": "a again", "body": "a duplicate of 1"}},
]


@pytest.fixture
def service():
    with EmbeddingService(ServiceBehaviour(api_key=None)) as running:
        yield running


def docs(write_bytes):
    return write_bytes("docs.jsonl", b"".join(json.dumps(doc).encode() + b"\n" for doc in DOCS))


def test_each_text_gets_the_services_vector_beside_its_records_own_fields(write_bytes, service):
    options = options_from({"agent_url": service.url, "text_field": "doc.body", "agent_chunk_size": 4})

    result = preview(PIPELINE, docs(write_bytes), key="id", options=options)

    assert result.rows.select("id", "doc", "embedding").to_dicts() == [
        {"id": 1, "doc": {"title": "a", "body": "the first text"}, "embedding": fake_embedding("the first text")},
        {"id": 2, "doc": {"title": "b", "body": "the second text"}, "embedding": fake_embedding("the second text")},
    ]
    assert [(entry.line, entry.reason.split(":")[0]) for entry in result.quarantined] == [
        (3, "agent embeddings rejected the record"),
        (4, "no text in field 'doc.body' to embed (--text-field)"),
    ]
    assert service.paid_for("a duplicate of 1") == 0  # deduplicated before any call


def test_without_an_agent_url_the_pipeline_says_which_option_is_missing(write_bytes):
    with pytest.raises(ConfigError, match="needs --agent-url"):
        preview(PIPELINE, docs(write_bytes), options=options_from({}))
