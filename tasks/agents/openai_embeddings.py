"""An embeddings agent for any OpenAI-compatible `/v1/embeddings` endpoint (OpenAI, Azure
OpenAI, vLLM, Ollama, LiteLLM, Hugging Face TEI): a chunk of texts per request, one vector per
text, added to the record as the column `embedding`."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from bqhold.tasks.agents.http_answers import failure_of, transport_failure
from bqhold.tasks.agents.text_embedder import EMBEDDING, TextEmbedder
from bqhold.tasks.core.agents.spec import Answer, RetryLater


@dataclass
class OpenAIEmbeddings(TextEmbedder):
    """Embeds the text in `text_field` of each record through `url` + `/embeddings`."""

    url: str = ""
    model: str = ""
    api_key: str | None = field(default=None, repr=False)
    _clients: asyncio.Queue[httpx.AsyncClient] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.identity = {"model": self.model, "url": self.url.rstrip("/"), "encoding_format": "float"}

    async def setup(self) -> None:
        """One client of one connection per call that may be in flight: httpx's pool looks at each
        of its connections on every request, which at 32 connections costs more than the call."""
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        self._clients = asyncio.Queue()
        for _ in range(self.limits.concurrency):
            self._clients.put_nowait(
                httpx.AsyncClient(
                    base_url=self.url.rstrip("/"),
                    headers=headers,
                    timeout=httpx.Timeout(self.limits.timeout_s),
                    limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
                )
            )

    async def call(self, inputs: Sequence[Any]) -> Answer:
        client = await self._clients.get()
        try:
            response = await client.post(
                "/embeddings", json={"model": self.model, "input": list(inputs), "encoding_format": "float"}
            )
        except httpx.TransportError as exc:
            raise transport_failure(exc) from None
        finally:
            self._clients.put_nowait(client)
        failure = failure_of(response)
        if failure is not None:
            raise failure
        return _answer(response, len(inputs))

    async def teardown(self) -> None:
        clients, self._clients = self._clients, None
        while clients is not None and not clients.empty():
            await clients.get_nowait().aclose()

    release = teardown  # nothing but a connection pool to give back


def _answer(response: httpx.Response, expected: int) -> Answer:
    """The vectors of an embeddings answer, in the order of the inputs (by each one's `index`)."""
    try:
        body = response.json()
        data = sorted(body["data"], key=lambda item: item["index"])
        vectors = [[float(x) for x in item["embedding"]] for item in data]
    except (ValueError, KeyError, TypeError) as exc:
        raise RetryLater(f"{response.request.url} answered something that is not an embeddings list ({exc})") from None
    if len(vectors) != expected:
        raise RetryLater(f"{response.request.url} answered {len(vectors)} embedding(s) for {expected} text(s)")
    usage = body.get("usage") or {}
    tokens = usage.get("total_tokens") or usage.get("prompt_tokens")
    return Answer([{EMBEDDING: vector} for vector in vectors], int(tokens) if tokens else None)
