"""What an HTTP agent service's answer means for the runner: retry it, split it, or stop.

Shared by every agent that speaks HTTP (OpenAI-compatible APIs and their kin). The API key is
never part of a message: a refused key is named by the setting that holds it, not by its value.
"""

from __future__ import annotations

import email.utils
import time

import httpx

from bqhold.tasks.core.agents.spec import AccessRefused, CallFailed, Rejected, RetryLater

_RETRY_STATUSES = frozenset({408, 409, 425, 500, 502, 503, 504, 520, 522, 524, 529})
KEY_SETTINGS = "the BQHOLD_AGENT_API_KEY environment variable, or the Secret block named by --agent-api-key-block"


def retry_after_s(headers: httpx.Headers) -> float | None:
    """The wait a service asks for: `retry-after-ms` (OpenAI's), else `Retry-After` in seconds or as an HTTP date."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        when = email.utils.parsedate_to_datetime(value) if value else None
        return max(0.0, when.timestamp() - time.time()) if when else None


def _said(response: httpx.Response) -> str:
    """The service's own explanation (OpenAI's `error.message`), shortened, else the status text."""
    try:
        error = response.json().get("error")
        message = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = None
    text = str(message or response.reason_phrase or "").strip()
    return text[:300]


def failure_of(response: httpx.Response) -> CallFailed | None:
    """None for a success; else what the runner does about the answer."""
    status = response.status_code
    if status < 300:
        return None
    where = f"{response.request.url}"
    if status == 429:
        return RetryLater(f"HTTP 429 from {where}: {_said(response)}", retry_after_s(response.headers), throttled=True)
    if status in _RETRY_STATUSES or status >= 500:
        return RetryLater(f"HTTP {status} from {where}: {_said(response)}", retry_after_s(response.headers))
    if status in (401, 403):
        return AccessRefused(f"{where} refused the API key (HTTP {status}); set the right key in {KEY_SETTINGS}")
    if status == 404:
        return AccessRefused(
            f"{where} answered HTTP 404 ({_said(response)}); check --agent-url (the API's base URL, e.g. "
            "http://127.0.0.1:8000/v1) and --agent-model"
        )
    return Rejected(f"HTTP {status}: {_said(response)}")


def transport_failure(exc: httpx.TransportError) -> RetryLater:
    """A request that got no answer (refused, reset, timed out): worth another try."""
    try:
        where = str(exc.request.url)
    except RuntimeError:  # httpx raises it when the error carries no request
        where = "the service"
    return RetryLater(f"{type(exc).__name__} from {where}: {exc or 'no answer'}")
