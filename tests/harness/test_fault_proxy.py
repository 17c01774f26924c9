"""FaultProxy between the real google-cloud-bigquery client and the local-bigquery emulator.

Observed with google-cloud-bigquery 3.47 / google-resumable-media 2.11 / local-bigquery 0.3.2:
- 429/500/503 with reasons rateLimitExceeded/internalError/backendError raise TooManyRequests/
  InternalServerError/ServiceUnavailable and are retried by bigquery.DEFAULT_RETRY (it retries by
  errors[0].reason, so a 5xx with another reason would not be retried).
- "reset" raises requests.exceptions.ConnectionError; "delay" past the call's timeout raises
  requests.exceptions.ReadTimeout; both are retried by DEFAULT_RETRY.
- load_table_from_file: size=None (the default) -> resumable upload (POST ...?uploadType=resumable,
  then one PUT ...&upload_id=... per client._DEFAULT_CHUNKSIZE (100 MB) chunk, 308 between
  chunks; the job is created by the final PUT); size < 5 MiB -> one multipart POST that creates
  the job. Uploads are retried by resumable-media (num_retries=6), not by DEFAULT_RETRY: after a
  lost job-creating response the multipart POST is re-sent and fails with Conflict (job exists);
  the resumable PUT is re-sent and fails with NotFound (the emulator forgets a finished upload
  session). num_retries=0 surfaces the ConnectionError itself. In every case the job ran once.
- A lost response to a middle chunk: the emulator appends the re-sent chunk twice and the client
  raises ValueError ("Bytes stream is in unexpected state"); no job is created.
"""

from __future__ import annotations

import http.client
import io
import itertools
import json
import socket
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests
from google.api_core import exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from tests.bigquery_checks import creates_load_job
from tests.emulator.server import BigQueryEmulator
from tests.faultproxy import ALL_KINDS, FaultProxy

ROWS = [{"name": n, "qty": q} for n, q in (("alpha", 1), ("beta", 2), ("gamma", 3))]
SCHEMA = [bigquery.SchemaField("name", "STRING"), bigquery.SchemaField("qty", "INT64")]
FAST_RETRY = bigquery.DEFAULT_RETRY.with_delay(initial=0.01, maximum=0.05).with_deadline(10)


def _client(proxy: FaultProxy, emulator: BigQueryEmulator) -> bigquery.Client:
    return bigquery.Client(
        project=emulator.project, credentials=AnonymousCredentials(), client_options={"api_endpoint": proxy.endpoint}
    )


def _ndjson(rows: list[dict[str, object]] = ROWS) -> bytes:
    return "".join(json.dumps(row) + "\n" for row in rows).encode()


def _load(
    client: bigquery.Client, table: str, data: bytes, job_id: str, *, sized: bool, **kwargs: object
) -> bigquery.LoadJob:
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON, schema=SCHEMA)
    size = len(data) if sized else None  # a size below 5 MiB selects the multipart upload
    return client.load_table_from_file(io.BytesIO(data), table, job_id=job_id, size=size, job_config=config, **kwargs)


def _count(client: bigquery.Client, table: str) -> int:
    return next(iter(client.query_and_wait(f"SELECT COUNT(*) AS n FROM `{table}`")))["n"]


def _nth_put(n: int) -> Callable[[str, str], bool]:
    """A predicate that is True for the n-th PUT only."""
    puts = itertools.count(1)
    return lambda method, path: method == "PUT" and next(puts) == n


def _first(n: int) -> Callable[[str, str], bool]:
    """A should_fault that is True for the first n requests only."""
    counter = itertools.count()
    return lambda method, path: next(counter) < n


@pytest.fixture
def proxy(bigquery_emulator: BigQueryEmulator) -> Iterator[FaultProxy]:
    with FaultProxy(bigquery_emulator.endpoint, delay_s=1.0) as running:
        yield running


@pytest.fixture
def client(proxy: FaultProxy, bigquery_emulator: BigQueryEmulator) -> Iterator[bigquery.Client]:
    made = _client(proxy, bigquery_emulator)
    yield made
    made.close()


@pytest.fixture
def no_upload_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Skip resumable-media's 1-2 s back-off between upload retries (the retries still happen)."""
    from google.resumable_media.requests import _request_helpers

    monkeypatch.setattr(_request_helpers, "time", types.SimpleNamespace(sleep=lambda _: None))


@pytest.fixture
def table(bigquery_client: bigquery.Client, bigquery_dataset: bigquery.Dataset) -> str:
    ref = f"{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.t"
    bigquery_client.create_table(bigquery.Table(ref, schema=SCHEMA))
    return ref


def test_passes_everything_through_at_fault_rate_zero(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: bigquery.Dataset
) -> None:
    seen: list[tuple[str, str]] = []

    def record(method: str, path: str) -> bool:
        seen.append((method, path))
        return True  # eligible for faults, but fault_rate is 0

    with FaultProxy(bigquery_emulator.endpoint, should_fault=record) as proxy:
        client = _client(proxy, bigquery_emulator)
        table = client.create_table(
            bigquery.Table(f"{bigquery_dataset.project}.{bigquery_dataset.dataset_id}.through", schema=SCHEMA)
        )
        ref = f"{table.project}.{table.dataset_id}.{table.table_id}"
        job_id = f"through-{uuid.uuid4().hex[:8]}"
        job = _load(client, ref, _ndjson(), job_id, sized=False)
        assert (job.job_id, job.state, job.output_rows) == (job_id, "DONE", 3)
        got = sorted(client.query_and_wait(f"SELECT name, qty FROM `{ref}`"), key=lambda r: r[1])
        assert [tuple(row.values()) for row in got] == [("alpha", 1), ("beta", 2), ("gamma", 3)]
        client.close()

    assert proxy.injected == [] and set(proxy.stats) == {"forwarded"}
    assert proxy.stats["forwarded"] == len(seen) >= 4
    # The resumable upload's PUT followed the rewritten Location header through the proxy.
    assert [m for m, p in seen if "/upload/" in p] == ["POST", "PUT"]


def test_large_sized_upload_uses_resumable_put_through_the_proxy(
    proxy: FaultProxy, client: bigquery.Client, table: str
) -> None:
    data = _ndjson([{"name": f"row-{i:07d}", "qty": i} for i in range(200_000)])
    assert len(data) > 5 * 1024 * 1024  # at or above 5 MiB even a sized load is resumable
    job = _load(client, table, data, f"big-{uuid.uuid4().hex[:8]}", sized=True)
    assert (job.state, job.output_rows) == ("DONE", 200_000)
    assert _count(client, table) == 200_000
    assert proxy.stats["forwarded"] >= 3 and not proxy.injected


@pytest.mark.parametrize(
    ("kind", "error", "reason"),
    [
        ("429", exceptions.TooManyRequests, "rateLimitExceeded"),
        ("500", exceptions.InternalServerError, "internalError"),
        ("503", exceptions.ServiceUnavailable, "backendError"),
    ],
)
def test_status_faults_raise_the_matching_exception_without_retry(
    proxy: FaultProxy,
    client: bigquery.Client,
    bigquery_dataset: bigquery.Dataset,
    kind: str,
    error: type[exceptions.GoogleAPICallError],
    reason: str,
) -> None:
    proxy.configure(fault_rate=1.0, kinds=[kind])
    with pytest.raises(error) as raised:
        client.get_dataset(bigquery_dataset.reference, retry=None)
    assert raised.value.code == int(kind) and raised.value.errors[0]["reason"] == reason
    assert "injected" in raised.value.message
    assert [k for k, _, _ in proxy.injected] == [kind] and proxy.stats["forwarded"] == 0


def test_reset_raises_connection_error_and_proxy_survives(
    proxy: FaultProxy, client: bigquery.Client, bigquery_dataset: bigquery.Dataset
) -> None:
    proxy.configure(fault_rate=1.0, kinds=["reset"])
    with pytest.raises(requests.exceptions.ConnectionError) as raised:
        client.get_dataset(bigquery_dataset.reference, retry=None)
    assert isinstance(raised.value.args[0].args[1], ConnectionResetError)
    proxy.configure(fault_rate=0.0)
    assert client.get_dataset(bigquery_dataset.reference, retry=None).dataset_id
    assert proxy.stats["reset"] == 1 and proxy.stats["forwarded"] == 1


def test_delay_past_the_timeout_raises_timeout_and_still_lands(
    proxy: FaultProxy, client: bigquery.Client, bigquery_client: bigquery.Client
) -> None:
    proxy.configure(fault_rate=1.0, kinds=["delay"])
    dataset_id = f"late_{uuid.uuid4().hex[:12]}"
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        client.create_dataset(dataset_id, retry=None, timeout=0.3)
    assert time.monotonic() - started < proxy.delay_s
    # The request is forwarded after the delay: the write happens although the client gave up.
    deadline = time.monotonic() + 5
    while proxy.stats["forwarded"] == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert bigquery_client.get_dataset(dataset_id).dataset_id == dataset_id
    bigquery_client.delete_dataset(dataset_id, delete_contents=True)


@pytest.mark.parametrize("kind", ["429", "500", "503", "reset", "delay"])
def test_default_retry_predicate_retries_every_kind(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: bigquery.Dataset, kind: str
) -> None:
    with FaultProxy(
        bigquery_emulator.endpoint, fault_rate=1.0, kinds=[kind], delay_s=1.0, should_fault=_first(2)
    ) as proxy:
        client = _client(proxy, bigquery_emulator)
        got = client.get_dataset(bigquery_dataset.reference, retry=FAST_RETRY, timeout=0.3)
        client.close()
    assert got.dataset_id == bigquery_dataset.dataset_id
    assert [k for k, _, _ in proxy.injected] == [kind, kind]


def test_default_client_retry_succeeds_at_fault_rate_half(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: bigquery.Dataset
) -> None:
    # Seed 1 faults the first two requests (429, reset): two default back-offs, at most 3 s.
    with FaultProxy(bigquery_emulator.endpoint, fault_rate=0.5, seed=1, kinds=["429", "500", "503", "reset"]) as proxy:
        client = _client(proxy, bigquery_emulator)
        got = client.get_dataset(bigquery_dataset.reference)  # the client's DEFAULT_RETRY
        client.close()
    assert got.dataset_id == bigquery_dataset.dataset_id
    assert [k for k, _, _ in proxy.injected] == ["429", "reset"]
    assert proxy.stats["forwarded"] == 1


def test_same_seed_same_faults(bigquery_emulator: BigQueryEmulator, bigquery_dataset: bigquery.Dataset) -> None:
    runs = []
    for _ in range(2):
        with FaultProxy(bigquery_emulator.endpoint, fault_rate=0.5, seed=42, kinds=["429", "500", "503"]) as proxy:
            client = _client(proxy, bigquery_emulator)
            for _ in range(20):
                try:
                    client.get_dataset(bigquery_dataset.reference, retry=None)
                except exceptions.GoogleAPICallError:
                    pass
            client.close()
        runs.append(list(proxy.injected))
    assert runs[0] == runs[1] and 0 < len(runs[0]) < 20


@pytest.mark.parametrize("sized", [True, False], ids=["multipart", "resumable"])
def test_lost_load_response_job_ran_once_and_job_id_conflicts(
    proxy: FaultProxy, client: bigquery.Client, table: str, sized: bool
) -> None:
    job_id = f"lost-{uuid.uuid4().hex[:8]}"
    proxy.drop_next_response(creates_load_job)
    with pytest.raises(requests.exceptions.ConnectionError):
        _load(client, table, _ndjson(), job_id, sized=sized, num_retries=0)
    assert [(k, m) for k, m, _ in proxy.injected] == [("drop_response", "POST" if sized else "PUT")]

    with pytest.raises(exceptions.Conflict):  # the lost request did create the job
        _load(client, table, _ndjson(), job_id, sized=sized, num_retries=0)
    job = client.get_job(job_id)
    assert (job.job_type, job.state, job.output_rows, job.error_result) == ("load", "DONE", 3, None)
    assert _count(client, table) == 3  # loaded exactly once
    assert len(proxy.injected) == 1  # one-shot


@pytest.mark.parametrize(
    ("sized", "error"), [(True, exceptions.Conflict), (False, exceptions.NotFound)], ids=["multipart", "resumable"]
)
def test_lost_load_response_with_default_upload_retries(
    proxy: FaultProxy, client: bigquery.Client, table: str, sized: bool, error: type[Exception], no_upload_backoff: None
) -> None:
    job_id = f"lost-retry-{uuid.uuid4().hex[:8]}"
    proxy.drop_next_response(creates_load_job)
    with pytest.raises(error):  # resumable-media re-sends the job-creating request once
        _load(client, table, _ndjson(), job_id, sized=sized)
    assert client.get_job(job_id).output_rows == 3
    assert _count(client, table) == 3


def test_lost_resumable_initiation_is_retried_harmlessly(
    proxy: FaultProxy, client: bigquery.Client, table: str, no_upload_backoff: None
) -> None:
    proxy.drop_next_response(lambda method, path: method == "POST" and "resumable" in path)
    job = _load(client, table, _ndjson(), f"init-{uuid.uuid4().hex[:8]}", sized=False)
    assert (job.state, job.output_rows) == ("DONE", 3)
    assert _count(client, table) == 3 and proxy.stats["drop_response"] == 1


@pytest.mark.parametrize("fault", ["reset", "drop_response"])
def test_fault_on_a_middle_chunk_of_a_multi_chunk_resumable_upload(
    proxy: FaultProxy,
    client: bigquery.Client,
    table: str,
    fault: str,
    monkeypatch: pytest.MonkeyPatch,
    no_upload_backoff: None,
) -> None:
    from google.cloud.bigquery import client as client_module

    monkeypatch.setattr(client_module, "_DEFAULT_CHUNKSIZE", 256 * 1024)  # the knob bqhold sets (to 16 MiB)
    data = _ndjson([{"name": f"row-{i:07d}", "qty": i} for i in range(30_000)])  # 5 chunks
    job_id = f"chunks-{uuid.uuid4().hex[:8]}"
    if fault == "reset":  # not forwarded: resumable-media re-sends the chunk, and all is well
        proxy.should_fault = _nth_put(2)
        proxy.configure(fault_rate=1.0, kinds=["reset"])
        job = _load(client, table, data, job_id, sized=False)
        assert (job.state, job.output_rows) == ("DONE", 30_000)
        assert _count(client, table) == 30_000
    else:  # forwarded: the emulator appends the re-sent chunk again (it ignores Content-Range),
        # answers 308 with a Range past what the client sent, and the client gives up.
        proxy.drop_next_response(_nth_put(2))
        with pytest.raises(ValueError, match="Bytes stream is in unexpected state"):
            _load(client, table, data, job_id, sized=False)
        with pytest.raises(exceptions.NotFound):
            client.get_job(job_id, retry=None)
        assert _count(client, table) == 0
    assert [k for k, _, _ in proxy.injected] == [fault]


def test_rewritten_answers_reach_the_client_while_the_emulator_keeps_the_truth(
    proxy: FaultProxy, client: bigquery.Client, bigquery_client: bigquery.Client, table: str
) -> None:
    job_id = f"rewrite-{uuid.uuid4().hex[:8]}"
    _load(client, table, _ndjson(), job_id, sized=True).result()

    def running(method: str, path: str, body: bytes) -> bytes:
        resource = json.loads(body)
        if resource.get("jobReference", {}).get("jobId") != job_id:
            return body
        return json.dumps({**resource, "status": {"state": "RUNNING"}}).encode()

    proxy.rewrite_responses(running)
    assert client.get_job(job_id, retry=None).state == "RUNNING", "the client sees the rewritten answer"
    assert bigquery_client.get_job(job_id, retry=None).state == "DONE", "the emulator itself is untouched"
    assert _count(client, table) == 3, "other answers pass through unchanged"
    proxy.rewrite_responses(None)
    assert client.get_job(job_id, retry=None).state == "DONE"


def test_chunked_body_garbage_and_configure_validation(proxy: FaultProxy, bigquery_emulator: BigQueryEmulator) -> None:
    address = ("127.0.0.1", int(proxy.endpoint.rsplit(":", 1)[1]))
    for garbage, status in [
        (b"\x16\x03\x01 junk\r\n\r\n", b""),  # no status line: HTTP/0.9
        (b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", b"HTTP/1.1 400"),
        (b"POST /x HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"HTTP/1.1 400"),
    ]:
        with socket.create_connection(address, timeout=5) as sock:
            sock.sendall(garbage)
            assert sock.recv(100).startswith(status)

    dataset_id = f"chunked_{uuid.uuid4().hex[:12]}"
    body = json.dumps({"datasetReference": {"projectId": bigquery_emulator.project, "datasetId": dataset_id}}).encode()
    conn = http.client.HTTPConnection(proxy.endpoint.removeprefix("http://"), timeout=5)
    conn.request(
        "POST",
        f"/bigquery/v2/projects/{bigquery_emulator.project}/datasets",
        body=iter([body[:10], body[10:]]),
        encode_chunked=True,
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert (response.status, json.loads(response.read())["datasetReference"]["datasetId"]) == (200, dataset_id)
    conn.request(
        "DELETE", f"/bigquery/v2/projects/{bigquery_emulator.project}/datasets/{dataset_id}?deleteContents=true"
    )  # same keep-alive connection
    assert conn.getresponse().status in (200, 204)
    conn.close()

    with pytest.raises(ValueError):
        proxy.configure(kinds=["boom"])
    with pytest.raises(ValueError):
        proxy.configure(fault_rate=1.5)
    assert set(ALL_KINDS) == {"429", "500", "503", "reset", "delay", "drop_response"}


def test_stop_is_prompt_with_idle_and_delayed_connections(
    bigquery_emulator: BigQueryEmulator, bigquery_dataset: bigquery.Dataset
) -> None:
    proxy = FaultProxy(bigquery_emulator.endpoint, delay_s=30.0).start()
    client = _client(proxy, bigquery_emulator)
    idle = http.client.HTTPConnection(proxy.endpoint.removeprefix("http://"), timeout=5)
    idle.request("GET", f"/bigquery/v2/projects/{bigquery_emulator.project}/datasets")
    assert idle.getresponse().read()  # this keep-alive connection now idles in the proxy
    proxy.configure(fault_rate=1.0, kinds=["delay"])
    errors: list[BaseException] = []

    def delayed_call() -> None:
        try:
            client.get_dataset(bigquery_dataset.reference, retry=None)
        except Exception as exc:
            errors.append(exc)

    waiter = threading.Thread(target=delayed_call, daemon=True)
    waiter.start()
    deadline = time.monotonic() + 5
    while not proxy.injected and time.monotonic() < deadline:
        time.sleep(0.02)
    handlers = list(proxy._conns.values())  # the handler threads of the two connections
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 2
    waiter.join(5)
    assert len(handlers) == 2 and not any(t.is_alive() for t in handlers)
    assert not waiter.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], requests.exceptions.ConnectionError)
    assert proxy.stats["forwarded"] == 1  # the delayed request was abandoned, not forwarded
    client.close()
    idle.close()
    proxy.stop()  # idempotent


def test_unreachable_upstream_answers_502(bigquery_emulator: BigQueryEmulator) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}"  # bound, not listening: refused
        with FaultProxy(dead) as proxy:
            client = _client(proxy, bigquery_emulator)
            with pytest.raises(exceptions.BadGateway):
                client.get_dataset("anything", retry=None)
            client.close()
    assert proxy.stats["upstream_error"] == 1 and proxy.stats["forwarded"] == 0
