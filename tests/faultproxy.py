"""A fault-injecting HTTP/1.1 reverse proxy for tests: client -> FaultProxy -> BigQuery emulator.

Per request for which should_fault(method, path) is True, a seeded random.Random picks a fault
with probability fault_rate (deterministic for a given seed and request order):
- "429" / "500" / "503": not forwarded; answered with a Google-style JSON error body.
- "reset": not forwarded; the client connection is closed with SO_LINGER 0 (a TCP reset).
- "delay": sleeps delay_s, then forwards and tries to answer (the client has usually given up).
- "drop_response": forwarded and fully answered upstream, then the client connection is reset
  without a response (the lost-response case).
drop_next_response(match) forces one "drop_response" on the next matching request.
rewrite_responses(rewrite) passes every forwarded 200 answer's body through rewrite(method, path,
body) before it reaches the client (e.g. to report a finished job as still running). `path` is the
request target as sent, query string included. Standard library only.
"""

from __future__ import annotations

import collections
import http.client
import json
import random
import socket
import struct
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

ALL_KINDS = ("429", "500", "503", "reset", "delay", "drop_response")
# Status, canonical status, reason: the reasons are in google.cloud.bigquery.retry's retryable set.
_ERRORS = {
    "429": (429, "RESOURCE_EXHAUSTED", "rateLimitExceeded"),
    "500": (500, "INTERNAL", "internalError"),
    "503": (503, "UNAVAILABLE", "backendError"),
}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}
_UPSTREAM_TIMEOUT = 120.0

Match = Callable[[str, str], bool]
Rewrite = Callable[[str, str, bytes], bytes]


class _Reset(Exception):
    """Abort the exchange: reset the client connection without an answer."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    proxy: FaultProxy

    def handle_error(self, request: object, client_address: object) -> None:
        """Count the error instead of printing a traceback; the server keeps running."""
        with self.proxy._lock:
            self.proxy.stats["proxy_error"] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: avoid 40 ms stalls
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.proxy._track(self.connection, add=True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.proxy._track(self.connection, add=False)

    def log_message(self, format: str, *args: object) -> None:
        pass

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except _Reset:
            self._reset()
        except OSError:  # client went away mid-exchange
            self.close_connection = True

    def _dispatch(self) -> None:
        proxy = self.server.proxy
        try:
            body = self._read_body()
        except ValueError:  # malformed chunk size or Content-Length
            self.send_error(400, "FaultProxy: malformed request body")
            return
        kind = proxy._choose(self.command, self.path)
        if kind in _ERRORS:
            self._send_error(kind)
            return
        if kind == "reset":
            raise _Reset
        if kind == "delay" and proxy._stopping.wait(proxy.delay_s):
            raise _Reset
        status, reason, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
        if kind == "drop_response":
            raise _Reset
        rewrite = proxy._rewrite_body
        if rewrite is not None and status == 200:
            payload = rewrite(self.command, self.path, payload)
        self.send_response_only(status, reason)
        for name, value in headers:
            self.send_header(name, value)
        if status >= 200 and status not in (204, 304) and self.command != "HEAD":
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        else:
            self.end_headers()

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

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

    def _send_error(self, kind: str) -> None:
        code, status, reason = _ERRORS[kind]
        message = f"injected {kind} by FaultProxy"
        payload = json.dumps(
            {
                "error": {
                    "code": code,
                    "message": message,
                    "status": status,
                    "errors": [{"reason": reason, "message": message, "domain": "global"}],
                }
            }
        ).encode()
        self.send_response_only(code)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Close the client socket with SO_LINGER 0 so the peer sees a connection reset."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()  # the makefile holds a reference that would keep the fd open
            self.connection.close()
        except OSError:
            pass


class FaultProxy:
    """Fault-injecting reverse proxy on 127.0.0.1 in front of `upstream` (context manager)."""

    def __init__(
        self,
        upstream: str,
        *,
        fault_rate: float = 0.0,
        kinds: Sequence[str] = ALL_KINDS,
        seed: int = 0,
        delay_s: float = 3.0,
        should_fault: Match | None = None,
    ) -> None:
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self.upstream = upstream.rstrip("/")
        self._up_host, self._up_port = parsed.hostname, parsed.port or 80
        self.delay_s = delay_s
        self.should_fault: Match = should_fault or (lambda method, path: True)
        self.stats: collections.Counter[str] = collections.Counter()
        self.injected: list[tuple[str, str, str]] = []
        self.requests: list[tuple[str, str]] = []  # every (method, path) received, faulted or not
        self.endpoint = ""
        self._rng = random.Random(seed)
        self._lock = threading.RLock()  # RLock: predicates may call back into the proxy
        self._drops: list[Match] = []
        self._rewrite_body: Rewrite | None = None
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.fault_rate, self.kinds = 0.0, tuple(ALL_KINDS)
        self.configure(fault_rate=fault_rate, kinds=kinds)

    def configure(self, *, fault_rate: float | None = None, kinds: Sequence[str] | None = None) -> None:
        """Change the fault rate and/or the fault kinds at runtime (thread-safe)."""
        if fault_rate is not None and not 0.0 <= fault_rate <= 1.0:
            raise ValueError(f"fault_rate must be in [0, 1], got {fault_rate}")
        if kinds is not None:
            kinds = tuple(kinds)
            unknown = set(kinds) - set(ALL_KINDS)
            if unknown or not kinds:
                raise ValueError(f"kinds must be a non-empty subset of {ALL_KINDS}, got {kinds}")
        with self._lock:
            if fault_rate is not None:
                self.fault_rate = fault_rate
            if kinds is not None:
                self.kinds = kinds

    def drop_next_response(self, match: Match) -> None:
        """Forward the next request matching (method, path) upstream, then reset, not answer."""
        with self._lock:
            self._drops.append(match)

    def rewrite_responses(self, rewrite: Rewrite | None) -> None:
        """Pass each forwarded 200 answer's body through `rewrite(method, path, body)` (None: stop)."""
        with self._lock:
            self._rewrite_body = rewrite

    def start(self) -> FaultProxy:
        """Bind 127.0.0.1 on a free port and serve in a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="FaultProxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket and every client connection; idempotent."""
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

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

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

    def _choose(self, method: str, path: str) -> str | None:
        """Pick the fault for this request (None: pass through) and record it."""
        kind = None
        with self._lock:
            self.requests.append((method, path))
            for i, match in enumerate(self._drops):
                if _safe(match, method, path):
                    del self._drops[i]
                    kind = "drop_response"
                    break
        if kind is None and _safe(self.should_fault, method, path):
            with self._lock:
                if self._rng.random() < self.fault_rate:
                    kind = self._rng.choice(self.kinds)
        if kind is not None:
            with self._lock:
                self.stats[kind] += 1
                self.injected.append((kind, method, path))
        return kind

    def _forward(
        self, method: str, path: str, headers: http.client.HTTPMessage, body: bytes
    ) -> tuple[int, str, list[tuple[str, str]], bytes]:
        """Send the request upstream on a fresh connection; return its full response."""
        if path.startswith(("http://", "https://")):  # absolute-form request target
            parts = urllib.parse.urlsplit(path)
            path = urllib.parse.urlunsplit(("", "", parts.path or "/", parts.query, ""))
        hop = _hop_by_hop(headers)
        skip = hop | {"host", "content-length", "expect"}
        out = [(k, v) for k, v in headers.items() if k.lower() not in skip]
        if body or method in ("POST", "PUT", "PATCH"):
            out.append(("Content-Length", str(len(body))))
        conn = http.client.HTTPConnection(self._up_host, self._up_port, timeout=_UPSTREAM_TIMEOUT)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for name, value in out:
                conn.putheader(name, value)
            conn.endheaders(body or None)
            response = conn.getresponse()
            payload = response.read()
        except (OSError, http.client.HTTPException) as exc:
            with self._lock:
                self.stats["upstream_error"] += 1
            message = f"FaultProxy: upstream {self.upstream} failed: {exc!r}"
            error = {
                "error": {
                    "code": 502,
                    "message": message,
                    "status": "UNAVAILABLE",
                    "errors": [{"reason": "badGateway", "message": message, "domain": "global"}],
                }
            }
            return 502, "Bad Gateway", [("Content-Type", "application/json")], json.dumps(error).encode()
        finally:
            conn.close()
        with self._lock:
            self.stats["forwarded"] += 1
        hop = _hop_by_hop(response.msg) | {"content-length"}
        back = [
            (k, self._rewrite(v) if k.lower() == "location" else v)
            for k, v in response.getheaders()
            if k.lower() not in hop
        ]
        if method == "HEAD" and response.getheader("Content-Length"):
            back.append(("Content-Length", response.getheader("Content-Length", "")))
        return response.status, response.reason, back, payload

    def _rewrite(self, location: str) -> str:
        """Point an absolute Location at the upstream to the proxy instead."""
        parts = urllib.parse.urlsplit(location)
        local = {self._up_host, "127.0.0.1", "localhost"}
        if parts.scheme == "http" and parts.hostname in local and (parts.port or 80) == self._up_port:
            return self.endpoint + location[len(f"{parts.scheme}://{parts.netloc}") :]
        return location


def _hop_by_hop(headers: http.client.HTTPMessage) -> set[str]:
    """The hop-by-hop header names, including those listed in Connection."""
    listed = {t.strip().lower() for v in headers.get_all("Connection") or [] for t in v.split(",")}
    return _HOP_BY_HOP | listed


def _safe(match: Match, method: str, path: str) -> bool:
    """Call a user predicate; an exception in it counts as no match."""
    try:
        return bool(match(method, path))
    except Exception:
        return False
