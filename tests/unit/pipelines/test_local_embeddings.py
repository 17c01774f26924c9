"""The local_embeddings pipeline on a small file: the packaged model's vectors beside the
records' own fields. Needs the `models` extra; skipped, saying so, where it is not installed."""

from __future__ import annotations

import json

import numpy
import pytest

from bqhold.flows.local_embeddings import PIPELINE
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import options_from
from bqhold.tasks.core.pipeline import preview

NO_MODELS = "the models extra is not installed (pip install -e '.[models]')"
DOCS = [{"id": 1, "body": "a cat sat on the mat"}, {"id": 2, "body": "stock markets fell"}, {"id": 3}]


def docs(write_bytes):
    return write_bytes("docs.jsonl", b"".join(json.dumps(doc).encode() + b"\n" for doc in DOCS))


def test_each_text_gets_the_models_own_vector(write_bytes):
    pytest.importorskip("sentence_transformers", reason=NO_MODELS)
    from bqhold.tasks.agents.sentence_model import load_model

    result = preview(PIPELINE, docs(write_bytes), options=options_from({"text_field": "body"}))

    vectors = result.rows["embedding"].to_list()
    expected = load_model("cpu").encode(["a cat sat on the mat", "stock markets fell"]).tolist()
    assert [len(vector) for vector in vectors] == [384, 384]
    numpy.testing.assert_allclose(vectors, expected, atol=1e-5)
    assert [entry.reason for entry in result.quarantined] == ["no text in field 'body' to embed (--text-field)"]


def test_a_service_url_is_refused_with_the_pipeline_to_use_instead(write_bytes):
    with pytest.raises(ConfigError, match="use the embeddings pipeline"):
        preview(PIPELINE, docs(write_bytes), options=options_from({"agent_url": "http://127.0.0.1:8000/v1"}))
