"""Google's errors in one line, with a hint for the service that raised them."""

from __future__ import annotations

import pytest
from google.api_core import exceptions as google_errors

from bqhold.tasks.core.errors import ExitCode, WarehouseRejected, WarehouseUnavailable, exit_code_for
from bqhold.tasks.core.retry import RetryPolicy
from bqhold.tasks.warehouses.google_api import STORAGE_HINTS, call_with_retries, translate


def test_a_missing_bucket_says_which_service_and_what_to_check_even_without_a_reason():
    error = translate(
        google_errors.NotFound("unknown error"), "uploading x to gs://b/x", "Cloud Storage", STORAGE_HINTS
    )

    assert isinstance(error, WarehouseRejected)
    assert str(error) == (
        "Cloud Storage uploading x to gs://b/x failed: 404 (unknown error); "
        "check that the bucket exists (bqhold creates objects, not buckets)"
    )


def test_access_denied_names_the_role_for_each_service():
    denied = google_errors.Forbidden("no", errors=[{"reason": "accessDenied"}])

    assert "roles/storage.objectAdmin" in str(translate(denied, "uploading", "Cloud Storage", STORAGE_HINTS))
    assert "roles/bigquery.dataEditor" in str(translate(denied, "loading"))


def test_transient_errors_are_retried_then_reported_as_resumable():
    waits: list[float] = []
    calls = []

    def flaky():
        calls.append(1)
        raise google_errors.ServiceUnavailable("busy")

    with pytest.raises(WarehouseUnavailable) as info:
        call_with_retries(flaky, "deleting x", RetryPolicy(attempts=3), waits.append, "Cloud Storage", STORAGE_HINTS)

    assert str(info.value).startswith("Cloud Storage deleting x failed: 503")
    assert exit_code_for(info.value) == ExitCode.RESUMABLE
    assert len(calls) == 3 and len(waits) == 2
