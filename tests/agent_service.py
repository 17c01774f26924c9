"""A local, rate-limited, OpenAI-compatible embeddings API for tests and benchmarks.

EmbeddingService serves `POST /v1/embeddings` (and `GET /v1/models`) on 127.0.0.1, so the code that
calls an embeddings API can be tested against real HTTP: real connections, real status codes, real
Retry-After headers, real slowness. What it answers is set by a ServiceBehaviour, which tests may
change while the service runs; what it saw is recorded, so tests can check what the client did:
how fast it sent (max_in_window), how many requests it had in flight (max_concurrent), and which
texts it paid for (paid_for) - a text answered twice was paid for twice.

Per request, in this order (the first that applies answers):
- unknown path or method -> 404;
- a wrong or missing `Authorization: Bearer <key>` -> 401 (api_key None: no check); forbidden -> 403;
- malformed JSON, or a body not shaped like the OpenAI spec -> 400;
- embeddings requests only, numbered from 1 as they arrive: a number in unavailable_burst -> 503;
  every throttle_every-th -> 429; over rate_limit_rps -> 429 (both with Retry-After: retry_after_s);
- any input containing reject_marker, or longer than max_input_chars -> 400 for the whole request,
  as real APIs fail a whole chunk for one bad input;
- otherwise 200 with deterministic vectors (fake_embedding), after slow_s more for every
  slow_every-th request (meant to exceed the client's timeout: the text is paid for all the same).
Every answer waits latency_s first. Standard library only; `python -m tests.agent_service` runs it
as its own process (see main).
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import hashlib
import json
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Collection, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

EMBEDDINGS_PATH = "/v1/embeddings"
MODELS_PATH = "/v1/models"
DEFAULT_MODEL = "text-embedding-3-small"


def fake_embedding(text: str, dims: int = 8) -> list[float]:
    """The service's vector for `text`: floats in [-1, 1] rounded to 6 decimals, from sha256.

    Block k of 8 floats comes from sha256(k as 4 bytes + text), 4 bytes a float, so the vector is
    the same in every process and a shorter one is a prefix of a longer one (as with `dimensions`).
    """
    if dims < 1:
        raise ValueError(f"dims must be >= 1, got {dims}")
    data = text.encode("utf-8")
    out: list[float] = []
    for block in range((dims + 7) // 8):
        digest = hashlib.sha256(block.to_bytes(4, "big") + data).digest()
        for i in range(0, 32, 4):
            out.append(round(int.from_bytes(digest[i : i + 4], "big") / 0xFFFFFFFF * 2 - 1, 6))
    return out[:dims]


def text_key(text: str) -> str:
    """The key of `text` in EmbeddingService.answered: its sha256, hex."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def count_tokens(texts: Sequence[str]) -> int:
    """The usage the service reports: the sum over inputs of max(1, len(text) // 4)."""
    return sum(max(1, len(text) // 4) for text in texts)


@dataclasses.dataclass
class ServiceBehaviour:
    """What the service answers. Change it while running with EmbeddingService.configure (atomic for
    several fields), or set one field on service.behaviour; each request reads a snapshot on arrival.
    """

    latency_s: float = 0.0  # every answer waits this long first
    api_key: str | None = "test-key"  # None: no Authorization check
    forbidden: bool = False  # every request with a good key -> 403
    rate_limit_rps: float | None = None  # admitted requests per second, over a sliding window
    retry_after_s: float | None = 1.0  # the Retry-After of a 429 (None: no header)
    throttle_every: int = 0  # every Nth embeddings request -> 429, whatever the rate
    unavailable_burst: tuple[int, int] | None = None  # embeddings requests a..b (from 1) -> 503
    unavailable_retry_after_s: float | None = None  # the Retry-After of a burst 503 (None: no header)
    slow_every: int = 0  # every Nth embeddings request waits slow_s more, then answers 200
    slow_s: float = 5.0
    reject_marker: str | None = "REJECT"  # an input containing it fails the request (400)
    max_input_chars: int | None = None  # an input longer than this fails the request (400)
    dims: int = 8  # vector length when the request has no `dimensions`


@dataclasses.dataclass
class RequestRecord:
    """One request as the service saw it. `n` numbers embeddings requests from 1 (0: other paths);
    `status` is what the service decided to answer, set before any wait (the client may have left)."""

    n: int
    arrived: float  # time.monotonic() at arrival
    wall: float  # time.time() at arrival
    method: str
    path: str
    status: int | None = None
    inputs: int = 0
    model: str | None = None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() closes the keep-alive connections and joins their threads itself
    request_queue_size = 256  # the listen backlog: 32+ clients connecting at once must not be refused
    service: EmbeddingService

    def handle_error(self, request: object, client_address: object) -> None:
        """Count the error instead of printing a traceback; the server keeps running."""
        with self.service._lock:
            self.service.errors += 1


class _Answer(Exception):
    """Answer now with this status and OpenAI-style error (type, code, message)."""

    def __init__(
        self,
        status: int,
        message: str,
        type_: str,
        code: str | None,
        retry_after: float | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.type, self.code, self.retry_after, self.param = status, type_, code, retry_after, param

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.type, "param": self.param, "code": self.code}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, so pooled clients (httpx) reuse connections
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.service._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.service._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _dispatch(self) -> None:
        service = self.server.service
        path = self.path.split("?", 1)[0].rstrip("/")
        record, behaviour = service._arrive(self.command, path)
        try:
            try:
                raw = self._read_body()
            except ValueError:
                self.close_connection = True
                raw = b"\x00"  # unreadable: answered as malformed JSON below
            status, payload, headers, wait_s = service._decide(record, behaviour, self.command, path, raw, self.headers)
            if service._stopping.wait(behaviour.latency_s + wait_s):
                self.close_connection = True
                return
            self._send(status, payload, headers)
        finally:
            service._leave()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _dispatch

    def _read_body(self) -> bytes:
        """Read the request body: chunked, Content-Length, or none."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline(65537).split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(65537)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0:
            raise ValueError(f"negative Content-Length {length}")
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class EmbeddingService:
    """A rate-limited OpenAI-compatible embeddings API on 127.0.0.1 (context manager).

    `url` is the base URL a client appends `/embeddings` to. What was seen: `requests` (one
    RequestRecord per request, in arrival order), `answered` (text_key(text) -> times the text got
    a 200, i.e. was paid for), `max_concurrent` (most requests handled at once), `errors` (handler
    exceptions). A text is paid for when the service decides to answer 200, before latency_s or
    slow_s: a client that timed out waiting has paid all the same, as with a real API.
    """

    def __init__(self, behaviour: ServiceBehaviour | None = None, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._behaviour = behaviour or ServiceBehaviour()
        self.host, self.port = host, port
        self.url = ""
        self.requests: list[RequestRecord] = []
        self.answered: collections.Counter[str] = collections.Counter()
        self.max_concurrent = 0
        self.errors = 0
        self._in_flight = 0
        self._numbered = 0
        self._admitted: collections.deque[float] = collections.deque()  # rate limiter's window
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def behaviour(self) -> ServiceBehaviour:
        return self._behaviour

    @behaviour.setter
    def behaviour(self, behaviour: ServiceBehaviour) -> None:
        with self._lock:
            self._behaviour = behaviour

    def configure(self, **changes: Any) -> ServiceBehaviour:
        """Change several behaviour fields at once (no request sees half the change); returns it."""
        unknown = set(changes) - {f.name for f in dataclasses.fields(ServiceBehaviour)}
        if unknown:
            raise TypeError(f"unknown ServiceBehaviour fields: {sorted(unknown)}")
        with self._lock:
            for name, value in changes.items():
                setattr(self._behaviour, name, value)
            return self._behaviour

    # --- what the service saw -------------------------------------------------------------------

    def paid_for(self, text: str) -> int:
        """How many times `text` got a 200 answer."""
        with self._lock:
            return self.answered[text_key(text)]

    def total_paid(self) -> int:
        """How many inputs got a 200 answer, repeats included."""
        with self._lock:
            return sum(self.answered.values())

    def status_counts(self) -> collections.Counter[int]:
        """Status -> how many requests were answered (or are being answered) with it."""
        with self._lock:
            return collections.Counter(r.status for r in self.requests if r.status is not None)

    def max_in_window(self, window_s: float, statuses: Collection[int] | None = None) -> int:
        """The most request arrivals within any window [t, t + window_s), over all requests or those
        whose status is in `statuses`: e.g. max_in_window(1.0) <= 5 when a client keeps to 5 rps."""
        with self._lock:
            times = sorted(r.arrived for r in self.requests if statuses is None or r.status in statuses)
        best, start = 0, 0
        for end, t in enumerate(times):
            while times[start] <= t - window_s:
                start += 1
            best = max(best, end - start + 1)
        return best

    def reset_counts(self) -> None:
        """Forget what was seen: requests, answered, max_concurrent, errors, and the request numbering
        (so unavailable_burst and *_every count from the next request). The rate limiter's window stays."""
        with self._lock:
            self.requests.clear()
            self.answered.clear()
            self.max_concurrent = self._in_flight
            self.errors = 0
            self._numbered = 0

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> EmbeddingService:
        """Bind host on port (0: a free one) and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server((self.host, self.port), _Handler)
        server.service = self
        self._server = server
        self.port = server.server_address[1]
        self.url = f"http://{self.host}:{self.port}/v1"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="EmbeddingService", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake waiting handlers, close every connection; idempotent."""
        server, self._server = self._server, None
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._conns = dict(self._conns), {}
        for conn in conns:  # wakes handler threads blocked on keep-alive reads
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + 5
        for thread in [self._thread, *conns.values()]:
            if thread is not None and thread is not threading.current_thread():
                thread.join(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> EmbeddingService:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- called by the handler ----------------------------------------------------------------------

    def _track(self, conn: socket.socket, *, add: bool) -> None:
        """Register or forget a client connection and its handler thread."""
        with self._lock:
            if not add:
                self._conns.pop(conn, None)
            elif not self._stopping.is_set():
                self._conns[conn] = threading.current_thread()
                return
        if add:  # accepted while stopping: make the handler's first read see EOF
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _arrive(self, method: str, path: str) -> tuple[RequestRecord, ServiceBehaviour]:
        """Record the arrival, count it in flight, and take the behaviour it will be answered by."""
        arrived, wall = time.monotonic(), time.time()
        with self._lock:
            n = 0
            if (method, path) == ("POST", EMBEDDINGS_PATH):
                self._numbered += 1
                n = self._numbered
            record = RequestRecord(n=n, arrived=arrived, wall=wall, method=method, path=path)
            self.requests.append(record)
            self._in_flight += 1
            self.max_concurrent = max(self.max_concurrent, self._in_flight)
            return record, dataclasses.replace(self._behaviour)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _decide(
        self,
        record: RequestRecord,
        behaviour: ServiceBehaviour,
        method: str,
        path: str,
        raw: bytes,
        headers: Any,
    ) -> tuple[int, dict[str, Any], dict[str, str], float]:
        """Status, body, extra headers and extra wait (slow_s) of the answer; records status and pay."""
        wait_s, request = 0.0, None
        try:
            _route(method, path)
            try:
                request = _parse(path, raw)
            except _Answer as invalid:
                bad_request: _Answer | None = invalid
            else:
                bad_request = None
                if request is not None:
                    record.inputs, record.model = len(request["texts"]), request["model"]
            _check_auth(behaviour, headers.get("Authorization"))
            if bad_request is not None:
                raise bad_request
            if request is None:
                payload: dict[str, Any] = {
                    "object": "list",
                    "data": [{"id": DEFAULT_MODEL, "object": "model", "created": 0, "owned_by": "agent-service"}],
                }
            else:
                self._check_limits(record, behaviour)
                _check_inputs(behaviour, request["texts"])
                payload = _embeddings(request, behaviour.dims)
                if behaviour.slow_every > 0 and record.n % behaviour.slow_every == 0:
                    wait_s = behaviour.slow_s
            status, extra = 200, {}
        except _Answer as answer:
            status, payload, extra = answer.status, answer.body(), {}
            if answer.retry_after is not None:
                extra["Retry-After"] = _seconds(answer.retry_after)
        with self._lock:
            record.status = status
            if status == 200 and request is not None:
                self.answered.update(text_key(text) for text in request["texts"])
        return status, payload, extra, wait_s

    def _check_limits(self, record: RequestRecord, behaviour: ServiceBehaviour) -> None:
        """The 503 burst, throttle_every and the rate limit, in that order.

        The rate limit admits at most max(1, int(rps)) requests in any sliding window of
        max(1, int(rps)) / rps seconds (1 s for a whole rps; 2 s for 0.5 rps). Only admitted
        requests count: a client that keeps retrying too fast is answered as soon as it slows down.
        """
        n, burst = record.n, behaviour.unavailable_burst
        if burst is not None and burst[0] <= n <= burst[1]:
            raise _Answer(
                503,
                "The server is overloaded or not ready yet.",
                "server_error",
                None,
                behaviour.unavailable_retry_after_s,
            )
        limited = behaviour.throttle_every > 0 and n % behaviour.throttle_every == 0
        rps = behaviour.rate_limit_rps
        if not limited and rps is not None:
            capacity = max(1, int(rps))
            window = capacity / rps
            with self._lock:
                while self._admitted and self._admitted[0] <= record.arrived - window:
                    self._admitted.popleft()
                limited = len(self._admitted) >= capacity
                if not limited:
                    self._admitted.append(record.arrived)
        if limited:
            raise _Answer(
                429,
                f"Rate limit reached for requests (limit: {rps} per second). Please try again later.",
                "requests",
                "rate_limit_exceeded",
                behaviour.retry_after_s,
            )


def _route(method: str, path: str) -> None:
    """404 for anything but POST /v1/embeddings and GET /v1/models, worded as OpenAI does."""
    if (method, path) not in (("POST", EMBEDDINGS_PATH), ("GET", MODELS_PATH)):
        raise _Answer(404, f"Invalid URL ({method} {path})", "invalid_request_error", None)


def _parse(path: str, raw: bytes) -> dict[str, Any] | None:
    """The embeddings request as {"model", "texts", "dims", "encoding"}; None for GET /v1/models."""
    if path == MODELS_PATH:
        return None
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _Answer(400, "We could not parse the JSON body of your request.", "invalid_request_error", None) from None
    if not isinstance(body, dict):
        raise _invalid("the body must be a JSON object")
    model, texts = body.get("model"), body.get("input")
    if not isinstance(model, str) or not model:
        raise _invalid("you must provide a model parameter", "model")
    if isinstance(texts, str):
        texts = [texts]
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise _invalid("'$.input' is invalid: a non-empty string or list of non-empty strings", "input")
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise _invalid(f"'{encoding}' is not one of ['float', 'base64'] - 'encoding_format'", "encoding_format")
    dims = body.get("dimensions")
    if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or dims < 1):
        raise _invalid("'dimensions' must be a positive integer", "dimensions")
    return {"model": model, "texts": texts, "dims": dims, "encoding": encoding}


def _check_auth(behaviour: ServiceBehaviour, authorization: str | None) -> None:
    if behaviour.api_key is not None and authorization != f"Bearer {behaviour.api_key}":
        shown = (authorization or "").removeprefix("Bearer ")[-4:]
        raise _Answer(
            401,
            f"Incorrect API key provided: ...{shown}.",
            "invalid_request_error",
            "invalid_api_key",
        )
    if behaviour.forbidden:
        raise _Answer(403, "You are not allowed to use this model.", "invalid_request_error", "forbidden")


def _check_inputs(behaviour: ServiceBehaviour, texts: list[str]) -> None:
    """One bad input fails the whole request, as with real APIs."""
    for i, text in enumerate(texts):
        if behaviour.reject_marker is not None and behaviour.reject_marker in text:
            raise _Answer(
                400,
                f"input {i} violates content policy (contains {behaviour.reject_marker!r})",
                "invalid_request_error",
                "content_policy_violation",
                param="input",
            )
        if behaviour.max_input_chars is not None and len(text) > behaviour.max_input_chars:
            raise _Answer(
                400,
                f"This model's maximum context length is {behaviour.max_input_chars} characters, "
                f"however input {i} has {len(text)} characters.",
                "invalid_request_error",
                "context_length_exceeded",
                param="input",
            )


def _embeddings(request: dict[str, Any], default_dims: int) -> dict[str, Any]:
    """The 200 body. encoding_format "base64" gives little-endian float32s, as OpenAI does."""
    dims = request["dims"] or default_dims
    data = []
    for i, text in enumerate(request["texts"]):
        vector: Any = fake_embedding(text, dims)
        if request["encoding"] == "base64":
            vector = base64.b64encode(struct.pack(f"<{dims}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": vector})
    tokens = count_tokens(request["texts"])
    return {
        "object": "list",
        "data": data,
        "model": request["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _invalid(message: str, param: str | None = None) -> _Answer:
    return _Answer(400, message, "invalid_request_error", None, param=param)


def _seconds(value: float) -> str:
    """A Retry-After value: "2" for a whole number of seconds, else "0.25"."""
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def main(argv: Sequence[str] | None = None) -> None:
    """Serve until killed, for benchmarks: print the base URL on one line, then on SIGTERM or
    SIGINT print a one-line JSON summary (requests, statuses, paid, max_concurrent) to stderr."""
    parser = argparse.ArgumentParser(prog="python -m tests.agent_service", description=main.__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--rps", type=float, default=None, help="the service's rate limit (default: none)")
    parser.add_argument("--retry-after-s", type=float, default=1.0)
    parser.add_argument("--api-key", default="test-key", help="expected bearer key; '' for no check")
    parser.add_argument("--dims", type=int, default=8)
    args = parser.parse_args(argv)
    behaviour = ServiceBehaviour(
        latency_s=args.latency_s,
        api_key=args.api_key or None,
        rate_limit_rps=args.rps,
        retry_after_s=args.retry_after_s,
        dims=args.dims,
    )
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    with EmbeddingService(behaviour, host=args.host, port=args.port) as service:
        print(service.url, flush=True)
        while not done.wait(0.5):
            pass
        summary = {
            "requests": len(service.requests),
            "statuses": {str(k): v for k, v in sorted(service.status_counts().items())},
            "paid": service.total_paid(),
            "max_concurrent": service.max_concurrent,
        }
    print(json.dumps(summary), file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
