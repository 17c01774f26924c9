"""The BigQuery client bqhold uses, and Google's errors translated into bqhold's.

Credentials, in order: anonymous when `BIGQUERY_EMULATOR_HOST` is set (an emulator), a
prefect-gcp `GcpCredentials` block by name, else Application Default Credentials.
"""

from __future__ import annotations

import os

from google.api_core import exceptions as google_errors
from google.auth import exceptions as auth_errors
from google.cloud import bigquery

from tasks.core.errors import (
    BqholdError,
    Category,
    ConfigError,
    WarehouseRejected,
    WarehouseUnavailable,
    classify_response,
)

EMULATOR_ENV = "BIGQUERY_EMULATOR_HOST"
# google-cloud-bigquery reads each resumable-upload chunk into memory, 100 MB by default;
# 16 MiB keeps a load group's upload from costing more memory than one batch.
UPLOAD_CHUNK_BYTES = 16 * 1024 * 1024
_HINTS = {
    "accessDenied": (
        "give the credentials roles/bigquery.dataEditor on the dataset and roles/bigquery.jobUser on the project"
    ),
    "notFound": "check that the project and dataset exist (bqhold creates tables, not datasets)",
    "invalid": "the data or the table's schema was rejected; see the message",
    "billingNotEnabled": "enable billing for the project",
}


def make_client(project: str, location: str | None = None, credentials_block: str | None = None) -> bigquery.Client:
    """A BigQuery client for `project`, with the credentials this environment calls for."""
    from google.cloud.bigquery import client as client_module

    client_module._DEFAULT_CHUNKSIZE = UPLOAD_CHUNK_BYTES  # read at each upload; no public knob
    emulator = os.environ.get(EMULATOR_ENV)
    if emulator:
        from google.auth.credentials import AnonymousCredentials

        endpoint = emulator if "://" in emulator else f"http://{emulator}"
        return bigquery.Client(
            project=project,
            location=location,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": endpoint},
        )
    try:
        if credentials_block:
            from prefect_gcp import GcpCredentials

            return GcpCredentials.load(credentials_block).get_bigquery_client(project=project, location=location)
        return bigquery.Client(project=project, location=location)
    except (auth_errors.DefaultCredentialsError, ValueError) as exc:
        raise ConfigError(
            "no Google credentials: run `gcloud auth application-default login`, set "
            "GOOGLE_APPLICATION_CREDENTIALS, or name a GcpCredentials block (--gcp-credentials-block)"
        ) from exc


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


def translate(exc: BaseException, doing: str) -> BqholdError | None:
    """A bqhold error with a one-line message saying what failed and what to do (None: a bug)."""
    if isinstance(exc, BqholdError):
        return exc
    if isinstance(exc, google_errors.GoogleAPICallError):
        reason = _reason(exc)
        message = f"BigQuery {doing} failed: {reason or exc.code} ({_first_line(exc.message)})"
        if classify_response(exc.code, reason) is Category.TRANSIENT:
            return WarehouseUnavailable(f"{message}; retries exhausted")
        hint = _HINTS.get(reason or "")
        return WarehouseRejected(f"{message}; {hint}" if hint else message)
    if isinstance(exc, (auth_errors.RefreshError, auth_errors.DefaultCredentialsError)):
        return ConfigError(f"BigQuery {doing} failed: Google credentials were refused ({_first_line(exc)})")
    if _is_network_error(exc):
        return WarehouseUnavailable(
            f"BigQuery {doing} failed: {type(exc).__name__} ({_first_line(exc)}); retries exhausted"
        )
    return None
