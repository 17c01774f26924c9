"""A flow run's log: an error bqhold raised on purpose is its one line; any other keeps its traceback."""

from __future__ import annotations

import io
import logging

import pytest

from bqhold.flows._logging import QuietExpectedErrors
from bqhold.tasks.core.errors import (
    ConfigError,
    DataErrorRateExceeded,
    InputError,
    Interrupted,
    ResourceError,
    ResumeRefused,
    StateError,
    TransientError,
    VerificationFailed,
)


def logged(error: BaseException) -> str:
    """What a log handler with bqhold's filter writes when `error` is logged with its traceback."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(QuietExpectedErrors())
    logger = logging.getLogger(f"{__name__}.{type(error).__name__}")
    logger.propagate = False
    logger.addHandler(handler)
    try:
        raise error
    except BaseException:
        logger.exception(str(error))
    finally:
        logger.removeHandler(handler)
    return out.getvalue()


@pytest.mark.parametrize(
    "error",
    [
        InputError("a.jsonl: input is empty (0 bytes)"),
        ResumeRefused("cannot resume run r1: a.jsonl is gone"),
        ConfigError("--batch-size must be at least 1, not 0"),
        DataErrorRateExceeded("20% of the records are bad"),
        TransientError("BigQuery answered 503"),
        ResourceError("out of memory at the smallest batch"),
        StateError("the checkpoint is damaged"),
        VerificationFailed("NOT verified: batch 1 differs"),
        Interrupted("stopped by SIGTERM after batch 3", 143),
    ],
    ids=lambda error: type(error).__name__,
)
def test_an_error_of_ours_is_logged_as_its_one_line_without_a_traceback(error):
    assert logged(error) == f"{error}\n"


def test_an_unexpected_error_keeps_its_traceback():
    text = logged(KeyError("user_id"))

    assert "Traceback (most recent call last)" in text and "KeyError: 'user_id'" in text
