"""An agent's calls against a real local OpenAI-compatible service (tests/agent_service.py):
rates kept, Retry-After honoured, throttling shrinks concurrency, failures retried, rejected
records found and set aside, a refused key stops everything, and answers kept on disk are never
paid for again (docs/design.md, invariant 11)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bqhold.flows.embeddings import build_agent
from bqhold.tasks.core.agents.calls import AgentRefused, AgentUnavailable
from bqhold.tasks.core.agents.session import AgentSession, agent_dir
from bqhold.tasks.core.options import options_from
from bqhold.tasks.core.records import OFFSET_COLUMN, QUARANTINE_REASON, Position
from bqhold.tasks.core.stop import StopRequest
from tests.agent_service import EmbeddingService, ServiceBehaviour, fake_embedding

KEY = "test-key"


@pytest.fixture
def service():
    with EmbeddingService(ServiceBehaviour(api_key=KEY)) as running:
        yield running


def texts(count: int, prefix: str = "text") -> pl.DataFrame:
    return pl.DataFrame({"text": [f"{prefix} {n}" for n in range(count)], OFFSET_COLUMN: list(range(count))})


def session(service: EmbeddingService, run_dir: Path, key: str = KEY, **options: object) -> AgentSession:
    settings = {"agent_url": service.url, "agent_retries": 3, **options}
    agent = build_agent(options_from(settings))
    agent.api_key = key
    return AgentSession(agent, run_dir, StopRequest())


def answered(run_dir: Path, service: EmbeddingService, rows: pl.DataFrame, **options: object) -> pl.DataFrame:
    agent = session(service, run_dir, **options)
    try:
        return agent.answer(rows, 0)
    finally:
        agent.close()


def test_every_text_gets_its_vector_and_is_paid_for_once(tmp_path, service):
    rows = texts(200)

    result = answered(tmp_path, service, rows, agent_chunk_size=16, agent_concurrency=4)

    assert result[QUARANTINE_REASON].null_count() == 200
    assert result["embedding"].to_list() == [fake_embedding(text) for text in rows["text"]]
    assert service.total_paid() == 200 and max(service.answered.values()) == 1


def test_the_declared_rate_is_never_exceeded_in_any_second(tmp_path, service):
    answered(tmp_path, service, texts(60), agent_chunk_size=1, agent_concurrency=8, agent_rps=25)

    assert service.max_in_window(1.0) <= 25
    arrivals = [request.arrived for request in service.requests]
    assert arrivals[-1] - arrivals[0] >= 1.0  # 60 calls at 25 a second take at least two windows


def test_retry_after_is_honoured_before_any_next_call(tmp_path, service):
    service.configure(throttle_every=7, retry_after_s=0.4)

    result = answered(tmp_path, service, texts(30), agent_chunk_size=1, agent_concurrency=1)

    assert result[QUARANTINE_REASON].null_count() == 30
    requests = service.requests
    throttled = [i for i, request in enumerate(requests) if request.status == 429]
    assert throttled
    for i in throttled:
        assert requests[i + 1].arrived - requests[i].arrived >= 0.4


def test_throttling_halves_the_concurrency_and_every_text_still_lands_once(tmp_path, service):
    service.configure(rate_limit_rps=40, retry_after_s=0.2, latency_s=0.02)
    agent = session(service, tmp_path, agent_chunk_size=1, agent_concurrency=16, agent_retries=8)
    try:
        result = agent.answer(texts(120), 0)
    finally:
        agent.close()

    assert result[QUARANTINE_REASON].null_count() == 120
    assert agent.runner.limit.lowest < 16
    assert agent.usage.throttled > 0
    assert service.total_paid() == 120 and max(service.answered.values()) == 1


def test_unavailable_and_too_slow_answers_are_retried(tmp_path, service):
    service.configure(unavailable_burst=(2, 4), slow_every=5, slow_s=2.0)

    result = answered(tmp_path, service, texts(40), agent_chunk_size=4, agent_timeout_s=0.5)

    assert result[QUARANTINE_REASON].null_count() == 40
    assert result["embedding"].to_list() == [fake_embedding(f"text {n}") for n in range(40)]


def test_a_rejected_chunk_is_split_until_the_refused_texts_are_alone(tmp_path, service):
    rows = texts(64).with_columns(
        pl.when(pl.col(OFFSET_COLUMN).is_in([9, 50])).then(pl.lit("REJECT me")).otherwise(pl.col("text")).alias("text")
    )

    result = answered(tmp_path, service, rows, agent_chunk_size=64)

    rejected = result.filter(pl.col(QUARANTINE_REASON).is_not_null())
    assert rejected[OFFSET_COLUMN].to_list() == [9, 50]
    assert "content policy" in rejected[QUARANTINE_REASON][0]
    assert service.total_paid() == 62
    assert len(service.requests) <= 1 + 2 * 2 * 6  # a binary search per bad text, not a call per text


def test_a_refused_key_stops_at_once_without_showing_the_key(tmp_path, service):
    with pytest.raises(AgentRefused) as refused:
        answered(tmp_path, service, texts(50), key="sk-wrong-secret", agent_chunk_size=5)

    message = str(refused.value)
    assert "HTTP 401" in message and "BQHOLD_AGENT_API_KEY" in message
    assert "sk-wrong-secret" not in message
    assert len(service.requests) <= 8  # in flight when the first refusal came back, no more


def test_answers_kept_before_a_failure_are_not_paid_for_again(tmp_path, service):
    service.configure(unavailable_burst=(6, 1000), latency_s=0.01)
    with pytest.raises(AgentUnavailable, match="--agent-retries"):
        answered(tmp_path, service, texts(40), agent_chunk_size=4, agent_concurrency=1, agent_retries=1)
    paid_before = service.total_paid()
    assert paid_before == 20

    service.configure(unavailable_burst=None)
    agent = session(service, tmp_path, agent_chunk_size=4, agent_concurrency=1)
    try:
        result = agent.answer(texts(40), 0)
    finally:
        agent.close()

    assert result[QUARANTINE_REASON].null_count() == 40
    assert max(service.answered.values()) == 1 and service.total_paid() == 40
    assert agent.usage.reused == 20


def test_a_changed_model_is_a_new_call_not_a_stale_answer(tmp_path, service):
    answered(tmp_path, service, texts(10), agent_chunk_size=5)

    answered(tmp_path, service, texts(10), agent_chunk_size=5, agent_model="another-model")

    assert service.total_paid() == 20
    assert {request.model for request in service.requests} == {"text-embedding-3-small", "another-model"}


def test_a_log_cut_short_by_a_kill_keeps_every_complete_write(tmp_path, service):
    agent = session(service, tmp_path, agent_chunk_size=3, agent_concurrency=1)
    try:
        agent.answer(texts(30), 0)
        (log,) = agent_dir(tmp_path).glob("*.arrows")
        log.write_bytes(log.read_bytes()[:-40])  # the last write torn
        torn_away = 30 - agent.log.read().height
    finally:
        agent.close()
    assert 0 < torn_away < 30

    result = answered(tmp_path, service, texts(30), agent_chunk_size=3, agent_concurrency=1)

    assert result[QUARANTINE_REASON].null_count() == 30
    assert service.total_paid() == 30 + torn_away  # only the torn write's answers are asked again


def test_once_a_batch_is_committed_its_answers_leave_the_log_and_later_ones_stay(tmp_path, service):
    agent = session(service, tmp_path, agent_chunk_size=10)
    try:
        agent.answer(texts(30), 0)
        agent.settle(Position(0, 20, 20), next_batch=1)
        kept = agent.log.read()
    finally:
        agent.close()

    assert sorted(kept["offset"].to_list()) == list(range(20, 30))


def test_equal_texts_in_a_batch_are_sent_once_and_each_record_gets_the_answer(tmp_path, service):
    rows = pl.DataFrame({"text": ["same words"] * 5 + ["other words"] * 3, OFFSET_COLUMN: list(range(8))})

    result = answered(tmp_path, service, rows, agent_chunk_size=1)

    assert result["embedding"].to_list() == [fake_embedding("same words")] * 5 + [fake_embedding("other words")] * 3
    assert service.total_paid() == 2
