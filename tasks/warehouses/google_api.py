"""The Google clients bqhold uses (BigQuery, Cloud Storage), their calls retried when the
classification table calls an error transient, and Google's errors translated into bqhold's.

Credentials, in order: anonymous when the service's emulator variable is set
(`BIGQUERY_EMULATOR_HOST`, `STORAGE_EMULATOR_HOST`), a prefect-gcp `GcpCredentials` block by
name, else Application Default Credentials.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from google.api_core import exceptions as google_errors
from google.auth import exceptions as auth_errors
from google.cloud import bigquery

from bqhold.tasks.core.errors import (
    BqholdError,
    Category,
    ConfigError,
    WarehouseConflict,
    WarehouseNotFound,
    WarehouseRejected,
    WarehouseUnavailable,
    classify_response,
)
from bqhold.tasks.core.retry import RetryPolicy, is_transient

if TYPE_CHECKING:
    from google.cloud import storage
    from prefect_gcp import GcpCredentials

T = TypeVar("T")
B = TypeVar("B")
EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
STORAGE_EMULATOR_ENV = "STORAGE_EMULATOR_HOST"
# google-cloud-bigquery reads each resumable-upload chunk into memory, 100 MB by default;
# 16 MiB keeps a load group's upload from costing more memory than one batch.
UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024
BIGQUERY_HINTS = {
    "accessDenied": (
        "give the credentials roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on the project"
    ),
    "notFound": "check that the project and dataset exist (bqhold creates tables, not datasets)",
    "invalid": "the data or the table's schema was rejected; see the message",
    "billingNotEnabled": "enable billing for the project",
}
_STORAGE_ACCESS = "give the credentials roles/storage.objectAdmin on the bucket"
_NO_BUCKET = "check that the bucket exists (bqhold creates objects, not buckets)"
# By reason, else by HTTP status (GCS errors do not always carry a reason).
STORAGE_HINTS = {
    "accessDenied": _STORAGE_ACCESS,
    "forbidden": _STORAGE_ACCESS,
    "403": _STORAGE_ACCESS,
    "notFound": _NO_BUCKET,
    "404": _NO_BUCKET,
}
_NO_CREDENTIALS = (
    "no Google credentials: run `gcloud auth application-default login`, set "
    "GOOGLE_APPLICATION_CREDENTIALS, or name a GcpCredentials block (--gcp-credentials-block)"
)


def _emulator_endpoint(variable: str) -> str | None:
    value = os.environ.get(variable)
    if not value:
        return None
    return value if "://" in value else f"http://{value}"


def load_gcp_block(block_class: type[B], name: str) -> B:
    """A prefect-gcp block by name; ConfigError when there is none, or its credentials are unusable."""
    from bqhold.blocks import load_block

    try:
        return load_block(block_class, name)
    except auth_errors.DefaultCredentialsError as exc:
        raise ConfigError(f"{block_class.__name__} block {name!r}: {_NO_CREDENTIALS}") from exc


def make_client(
    project: str, location: str | None = None, credentials: GcpCredentials | None = None
) -> bigquery.Client:
    """A BigQuery client for `project`, with the credentials this environment calls for."""
    from google.cloud.bigquery import client as client_module

    client_module._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK_BYTES  # read at each upload; no public knob
    endpoint = _emulator_endpoint(EMULATOR_ENV)
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    try:
        if credentials is not None:
            return credentials.get_bigquery_client(project=project, location=location)
        return bigquery.Client(project=project, location=location)
    except (auth_errors.DefaultCredentialsError, ValueError) as exc:
        raise ConfigError(_NO_CREDENTIALS) from exc


def make_storage_client(project: str | None, credentials: GcpCredentials | None = None) -> storage.Client:
    """A Cloud Storage client, with the credentials this environment calls for."""
    from google.cloud import storage

    endpoint = _emulator_endpoint(STORAGE_EMULATOR_ENV)
    if endpoint:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project=project, credentials=AnonymousCredentials(), client_options={"api_endpoint": endpoint}
        )
    try:
        if credentials is not None:
            return credentials.get_cloud_storage_client(project=project)
        return storage.Client(project=project)
    except (auth_errors.DefaultCredentialsError, ValueError) as exc:
        raise ConfigError(_NO_CREDENTIALS) from exc


def call_with_retries(
    call: Callable[[], T],
    doing: str,
    policy: RetryPolicy,
    sleep: Callable[[float], None] = time.sleep,
    service: str = "BigQuery",
    hints: dict[str, str] = BIGQUERY_HINTS,
) -> T:
    """Run one API call, retrying transient failures; translate what remains into bqhold's errors."""
    try:
        for attempt in policy.retrying(should_retry=_worth_retrying, sleep=sleep):
            with attempt:
                return call()
    except Exception as exc:
        translated = translate(exc, doing, service, hints)
        if translated is None:
            raise
        raise translated from exc
    raise AssertionError("unreachable")


def _worth_retrying(exc: BaseException) -> bool:
    return is_transient_google_error(exc) or is_transient(exc)


def is_transient_google_error(exc: BaseException) -> bool:
    """True for Google errors the classification table calls transient, and network failures."""
    if isinstance(exc, google_errors.GoogleAPICallError):
        return classify_response(exc.code, _reason(exc)) is Category.TRANSIENT
    return _is_network_error(exc)


def upload_session_lost(exc: BaseException) -> bool:
    """True when a resumable upload failed in a way only a fresh upload can fix: the session is
    gone (404 after a lost final answer) or out of step (a chunk's answer was lost)."""
    if isinstance(exc, google_errors.NotFound):
        return True
    if isinstance(exc, ValueError) and str(exc).startswith("Bytes stream is in unexpected state"):
        return True
    from google.resumable_media import InvalidResponse

    return isinstance(exc, InvalidResponse)


def _reason(exc: google_errors.GoogleAPICallError) -> str | None:
    return exc.reason or next((e.get("reason") for e in exc.errors or [] if isinstance(e, dict)), None)


def _is_network_error(exc: BaseException) -> bool:
    import requests

    network = (ConnectionError, TimeoutError, requests.ConnectionError, requests.Timeout, google_errors.RetryError)
    return isinstance(exc, network)


def _first_line(text: object) -> str:
    return str(text).strip().splitlines()[0][:300] if str(text).strip() else ""


def translate(
    exc: BaseException, doing: str, service: str = "BigQuery", hints: dict[str, str] = BIGQUERY_HINTS
) -> BqholdError | None:
    """A bqhold error with a one-line message saying what failed and what to do (None: a bug)."""
    if isinstance(exc, BqholdError):
        return exc
    if isinstance(exc, google_errors.GoogleAPICallError):
        reason = _reason(exc)
        message = f"{service} {doing} failed: {reason or exc.code} ({_first_line(exc.message)})"
        if classify_response(exc.code, reason) is Category.TRANSIENT:
            return WarehouseUnavailable(f"{message}; retries exhausted")
        hint = hints.get(reason or "") or hints.get(str(exc.code))
        rejected = {404: WarehouseNotFound, 409: WarehouseConflict}.get(exc.code, WarehouseRejected)
        return rejected(f"{message}; {hint}" if hint else message)
    if isinstance(exc, (auth_errors.RefreshError, auth_errors.DefaultCredentialsError)):
        return ConfigError(f"{service} {doing} failed: Google credentials were refused ({_first_line(exc)})")
    if _is_network_error(exc):
        return WarehouseUnavailable(
            f"{service} {doing} failed: {type(exc).__name__} ({_first_line(exc)}); retries exhausted"
        )
    return None
