"""The one classification table of warehouse errors (reason first, then HTTP status)."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.errors import Category, classify_response


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (403, "rateLimitExceeded", Category.TRANSIENT),
        (500, "backendError", Category.TRANSIENT),
        (500, "internalError", Category.TRANSIENT),
        (None, "jobBackendError", Category.TRANSIENT),
        (400, "invalid", Category.PERMANENT),
        (404, "notFound", Category.PERMANENT),
        (403, "accessDenied", Category.PERMANENT),
        (429, None, Category.TRANSIENT),
        (502, None, Category.TRANSIENT),
        (503, None, Category.TRANSIENT),
        (504, None, Category.TRANSIENT),
        (400, None, Category.PERMANENT),
        (401, None, Category.PERMANENT),
        (418, None, Category.PERMANENT),
        (None, "somethingNew", Category.PERMANENT),
    ],
)
def test_classification(status, reason, expected):
    assert classify_response(status, reason) is expected
