"""Logging set-up shared by the local command and every flow run (local or under a worker)."""

from __future__ import annotations

import logging

from bqhold.tasks.core.errors import BqholdError


class QuietExpectedErrors(logging.Filter):
    """Drop the traceback from log records of errors bqhold raised on purpose.

    Their message already says what to do; a traceback for bad input or a bad option would
    only bury it (docs/design.md, invariant 10). Unexpected errors keep their traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], BqholdError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_errors() -> None:
    """Install QuietExpectedErrors on every handler of Prefect's loggers."""
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(existing, QuietExpectedErrors) for existing in handler.filters):
                handler.addFilter(QuietExpectedErrors())


def project_loggers_at_info() -> None:
    """Let `bqhold.*` records at INFO reach Prefect's handlers (PREFECT_LOGGING_EXTRA_LOGGERS
    forwards them, but Prefect 3.8.8 leaves their level at the root's WARNING)."""
    project = logging.getLogger("bqhold")
    if project.level == logging.NOTSET:
        project.setLevel(logging.INFO)


def flow_logging() -> None:
    """What every bqhold flow run sets up first, locally or under a worker."""
    quiet_expected_errors()
    project_loggers_at_info()
