"""The retry layers' product: what tasks/core/retry.py states is what the real layers do.

Each layer is run as the code runs it (the upload through the real BigQuery client against a
local server that always answers 503), every jitter pinned at its largest, and the tries and
waits observed are multiplied out the way `worst_case()` says.
"""

from __future__ import annotations

import http.server
import random
import threading
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api_core import exceptions as google_errors
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from google.resumable_media.requests import _request_helpers

from bqhold.tasks import load
from bqhold.tasks.core import retry
from bqhold.tasks.core.options import JobOptions
from bqhold.tasks.core.retry import RequestRetries, RetryPolicy, RetryTiming, WorstCase, worst_case
from bqhold.tasks.core.warehouse_url import parse_warehouse
from bqhold.tasks.warehouses import bigquery_dataset, open_warehouse

Observed = tuple[int, list[float]]  # tries, and the waits between them


class Unavailable(http.server.BaseHTTPRequestHandler):
    """Answers every request 503 and counts them."""

    requests = 0

    def do_POST(self) -> None:
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(503)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unavailable() -> Iterator[str]:
    """The endpoint of a local HTTP server that is never available."""
    Unavailable.requests = 0
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Unavailable)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def largest_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """tenacity (uniform) and google-resumable-media (randint) draw their jitter at its largest."""
    monkeypatch.setattr(random, "uniform", lambda low, high: high)
    monkeypatch.setattr(random, "randint", lambda low, high: high)


def request_layer(max_retries: int, timing: RetryTiming) -> Observed:
    """The request layer's policy on a call that always times out."""
    waits: list[float] = []
    calls: list[int] = []
    with pytest.raises(TimeoutError):
        for attempt in RetryPolicy.from_max_retries(max_retries, timing).retrying(sleep=waits.append):
            with attempt:
                calls.append(1)
                raise TimeoutError("slow")
    return len(calls), waits


def upload_layer(max_retries: int, endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Observed:
    """BigQueryDataset's upload, through the real client, to a server that is never available."""
    waits: list[float] = []
    monkeypatch.setattr(_request_helpers, "time", types.SimpleNamespace(sleep=waits.append))
    client = bigquery.Client("p", credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint})
    dataset = bigquery_dataset.BigQueryDataset(client, "p", "d", retries=RequestRetries(max_retries), job_timeout_s=60)
    segment = tmp_path / "batch-000000.jsonl"
    segment.write_text('{"id": 1}\n')
    config = bigquery.LoadJobConfig(source_format=bigquery.SourceFormat.NEWLINE_DELIMITED_JSON)
    with pytest.raises(google_errors.ServiceUnavailable):
        dataset._upload_job("job", "p.d.t", [segment], config)
    return Unavailable.requests, waits


def task_layer() -> Observed:
    """The retries Prefect was given for the load and verify tasks."""
    assert (load.verify_run.retries, load.verify_run.retry_delay_seconds) == (
        load.load_group.retries,
        load.load_group.retry_delay_seconds,
    )
    return 1 + load.load_group.retries, list(load.load_group.retry_delay_seconds)


@pytest.mark.parametrize("max_retries", [0, 3, 7])
def test_the_worst_case_is_the_product_of_what_each_layer_does(
    max_retries: int, unavailable: str, largest_jitter: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    timing = RetryTiming()
    layers = [
        upload_layer(max_retries, unavailable, tmp_path, monkeypatch),
        request_layer(max_retries, timing),
        (bigquery_dataset._MAX_JOB_ATTEMPTS, [0.0] * (bigquery_dataset._MAX_JOB_ATTEMPTS - 1)),  # sent again at once
        task_layer(),
    ]
    attempts, wall_s = 1, timing.request_timeout_s
    for tries, waits in layers:
        assert len(waits) == tries - 1
        attempts, wall_s = attempts * tries, tries * wall_s + sum(waits)

    assert worst_case(max_retries, timing) == WorstCase(attempts, wall_s)


def test_the_module_states_the_worst_case_at_the_defaults() -> None:
    worst = worst_case(3, RetryTiming())
    assert f"= {worst.attempts} times over {worst.wall_s:,.0f} s" in " ".join(retry.__doc__.split())


def test_a_warehouse_takes_its_retries_from_max_retries_and_the_retry_timing(
    monkeypatch: pytest.MonkeyPatch, retry_timing
) -> None:
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", "127.0.0.1:9")  # a client that is never asked anything
    retry_timing(first_wait_s=0.01, request_timeout_s=1.5)

    warehouse = open_warehouse(
        parse_warehouse("bigquery://my-project/d"), JobOptions(input="x", table="t", max_retries=5)
    )

    try:
        assert warehouse.request_timeout_s == 1.5
        assert (warehouse.policy.attempts, warehouse.policy.initial_s) == (6, 0.01)
        assert warehouse.upload_retries == 5
    finally:
        warehouse.close()
