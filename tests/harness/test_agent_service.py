"""EmbeddingService driven by the real httpx client: the answers an embeddings client will be tested
against (shape, vectors, 401/400/429/503, timeouts) and the counts tests will judge it by (paid_for,
max_in_window, max_concurrent). Timing-free where it can be: faults are injected by request number."""

from __future__ import annotations

import base64
import http.client
import json
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.agent_service import EmbeddingService, RequestRecord, ServiceBehaviour, count_tokens, fake_embedding
from tests.conftest import ROOT

MODEL = "text-embedding-3-small"


@pytest.fixture
def service() -> Iterator[EmbeddingService]:
    with EmbeddingService(ServiceBehaviour()) as running:
        yield running


@pytest.fixture
def client(service: EmbeddingService) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, headers={"Authorization": "Bearer test-key"}, timeout=5) as made:
        yield made


def _embed(client: httpx.Client, texts: str | list[str], **extra: object) -> httpx.Response:
    return client.post("/embeddings", json={"model": MODEL, "input": texts, **extra})


def _statuses(client: httpx.Client, n: int) -> list[int]:
    return [_embed(client, f"text {i}").status_code for i in range(n)]


def test_answer_has_the_openai_shape_and_deterministic_vectors(service: EmbeddingService, client: httpx.Client) -> None:
    texts = ["hello world", "a", "héllo wörld, a longer text"]
    response = _embed(client, texts)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "list" and body["model"] == MODEL
    assert body["usage"] == {"prompt_tokens": 2 + 1 + 6, "total_tokens": count_tokens(texts)}
    assert [(d["object"], d["index"]) for d in body["data"]] == [("embedding", i) for i in range(3)]
    assert [d["embedding"] for d in body["data"]] == [fake_embedding(t) for t in texts]
    assert _embed(client, texts).json()["data"] == body["data"]  # the same text, the same vector
    assert _embed(client, "hello world").json()["data"][0]["embedding"] == fake_embedding("hello world")


def test_fake_embedding_is_bounded_and_a_shorter_vector_is_a_prefix() -> None:
    long = fake_embedding("x", 20)
    assert len(long) == 20 and all(-1 <= v <= 1 and round(v, 6) == v for v in long)
    assert fake_embedding("x", 8) == long[:8] == fake_embedding("x")
    assert fake_embedding("x") != fake_embedding("y")


def test_dimensions_and_base64_encoding(client: httpx.Client) -> None:
    floats = _embed(client, "abc", dimensions=12).json()["data"][0]["embedding"]
    assert floats == fake_embedding("abc", 12)
    packed = _embed(client, "abc", dimensions=12, encoding_format="base64").json()["data"][0]["embedding"]
    decoded = struct.unpack("<12f", base64.b64decode(packed))  # float32, as OpenAI sends it
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_bad_or_missing_key_is_401_and_forbidden_is_403(service: EmbeddingService, client: httpx.Client) -> None:
    wrong = client.post("/embeddings", json={"model": MODEL, "input": "x"}, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["type"] == "invalid_request_error"
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    with httpx.Client(base_url=service.url) as anonymous:
        assert _embed(anonymous, "x").status_code == 401
        service.behaviour.api_key = None  # no check
        assert _embed(anonymous, "x").status_code == 200
    service.behaviour.forbidden = True
    assert _embed(client, "y").status_code == 403
    assert service.paid_for("x") == 1 and service.paid_for("y") == 0


def test_one_marked_input_fails_the_whole_chunk(service: EmbeddingService, client: httpx.Client) -> None:
    response = _embed(client, ["fine", "this one REJECT me", "fine too"])
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "content_policy_violation" and error["type"] == "invalid_request_error"
    assert "input 1" in error["message"]
    service.configure(max_input_chars=10)
    too_long = _embed(client, ["short", "x" * 11])
    assert too_long.status_code == 400 and "maximum context length" in too_long.json()["error"]["message"]
    assert service.total_paid() == 0  # the good inputs of a failed request are not paid for
    assert [r.inputs for r in service.requests] == [3, 2]


def test_malformed_requests_are_400_and_unknown_paths_404(client: httpx.Client) -> None:
    assert client.post("/embeddings", content=b"{not json").status_code == 400
    assert client.post("/embeddings", json={"input": "no model"}).status_code == 400
    assert client.post("/embeddings", json={"model": MODEL, "input": []}).status_code == 400
    assert client.post("/embeddings", json={"model": MODEL, "input": [1, 2]}).status_code == 400
    assert client.post("/completions", json={}).status_code == 404
    assert client.get("/embeddings").status_code == 404
    assert client.get("/models").json()["data"][0]["id"] == MODEL


def test_rate_limit_answers_429_with_retry_after(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(rate_limit_rps=3, retry_after_s=0.5)
    responses = [_embed(client, f"text {i}") for i in range(5)]
    assert [r.status_code for r in responses] == [200, 200, 200, 429, 429]
    assert responses[3].headers["Retry-After"] == "0.5"
    assert responses[3].json()["error"]["code"] == "rate_limit_exceeded"
    assert service.max_in_window(1.0, statuses={200}) == 3 and service.max_in_window(1.0) == 5
    service.configure(retry_after_s=2)
    assert _embed(client, "again").headers["Retry-After"] == "2"  # a whole number is written as one


def test_rate_limit_window_slides(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(rate_limit_rps=1.8)  # 1 request per 1/1.8 = 0.56 s window
    assert _statuses(client, 2) == [200, 429]
    time.sleep(0.6)
    assert _statuses(client, 2) == [200, 429]


def test_throttle_every_nth_request(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(throttle_every=3, retry_after_s=None)
    responses = [_embed(client, f"text {i}") for i in range(6)]
    assert [r.status_code for r in responses] == [200, 200, 429, 200, 200, 429]
    assert "Retry-After" not in responses[2].headers


def test_unavailable_burst_counts_embeddings_requests(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(unavailable_burst=(2, 3), unavailable_retry_after_s=0.25)
    first = _statuses(client, 1)
    client.get("/models")  # not an embeddings request: not numbered
    responses = [_embed(client, f"text {i}") for i in range(3)]
    assert first + [r.status_code for r in responses] == [200, 503, 503, 200]
    assert responses[0].headers["Retry-After"] == "0.25"
    assert responses[0].json()["error"]["type"] == "server_error"
    assert [r.n for r in service.requests] == [1, 0, 2, 3, 4]
    service.reset_counts()  # numbering starts again: the burst comes again
    assert _statuses(client, 3) == [200, 503, 503]


def test_paid_for_counts_answers_not_requests(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(throttle_every=2)
    assert _embed(client, ["a", "b"]).status_code == 200
    assert _embed(client, ["a", "c"]).status_code == 429
    assert _embed(client, ["a", "a"]).status_code == 200
    assert (service.paid_for("a"), service.paid_for("b"), service.paid_for("c")) == (3, 1, 0)
    assert service.total_paid() == 4
    assert service.status_counts() == {200: 2, 429: 1}
    service.reset_counts()
    assert service.total_paid() == 0 and service.requests == []


def test_a_slow_answer_is_paid_for_although_the_client_gave_up(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(slow_every=2, slow_s=2.0)
    assert _embed(client, "fast").status_code == 200
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        client.post("/embeddings", json={"model": MODEL, "input": "slow"}, timeout=0.2)
    assert time.monotonic() - started < 1.0
    assert service.paid_for("slow") == 1 and service.requests[-1].status == 200


def _records(*arrivals: tuple[float, int]) -> EmbeddingService:
    """A service (not started) whose records are made up: (arrival time, status) each."""
    service = EmbeddingService()
    service.requests.extend(
        RequestRecord(n=i, arrived=t, wall=t, method="POST", path="/v1/embeddings", status=s)
        for i, (t, s) in enumerate(arrivals, 1)
    )
    return service


def test_max_in_window_is_the_densest_half_open_window() -> None:
    service = _records((0.0, 200), (0.1, 429), (0.5, 200), (1.0, 200), (1.05, 200), (1.3, 503))
    assert service.max_in_window(1.0) == 4  # 0.1 .. 1.05 or 0.5 .. 1.3
    assert service.max_in_window(1.0, statuses={200}) == 3  # 0.5, 1.0, 1.05
    assert service.max_in_window(0.4) == 3 and service.max_in_window(0.2) == 2
    assert service.max_in_window(10.0) == 6 and service.max_in_window(1.0, statuses={500}) == 0
    # Arrivals exactly window_s apart are not in one window: 1 per second is within a 1 rps limit.
    assert _records((0.0, 200), (1.0, 200), (2.0, 200)).max_in_window(1.0) == 1


def test_32_concurrent_clients_are_served_at_once(service: EmbeddingService, client: httpx.Client) -> None:
    service.configure(latency_s=0.2)
    with (
        httpx.Client(
            base_url=service.url, headers={"Authorization": "Bearer test-key"}, limits=httpx.Limits(max_connections=64)
        ) as pooled,
        ThreadPoolExecutor(32) as pool,
    ):
        statuses = list(pool.map(lambda i: _embed(pooled, f"text {i}").status_code, range(32)))
    assert statuses == [200] * 32
    assert service.max_concurrent >= 16 and service.total_paid() == 32


def test_keeps_the_connection_alive() -> None:
    with EmbeddingService(ServiceBehaviour(api_key=None)) as service:
        conn = http.client.HTTPConnection("127.0.0.1", service.port, timeout=5)
        socks = []
        for text in ("a", "b"):
            conn.request("POST", "/v1/embeddings", json.dumps({"model": MODEL, "input": text}))
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["data"]
            socks.append(conn.sock)
        conn.close()
    assert socks[0] is not None and socks[0] is socks[1]


def test_runs_as_its_own_process() -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.agent_service", "--port", "0", "--api-key", "k", "--rps", "100"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx.Client(base_url=url, headers={"Authorization": "Bearer k"}) as made:
            assert _embed(made, "x").json()["data"][0]["embedding"] == fake_embedding("x")
        process.terminate()
        _, err = process.communicate(timeout=5)
    finally:
        process.kill()
    summary = json.loads(err.strip().splitlines()[-1])
    assert summary == {"requests": 1, "statuses": {"200": 1}, "paid": 1, "max_concurrent": 1}
