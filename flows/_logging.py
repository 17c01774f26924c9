"""Logging set-up shared by the local command and every flow run (local or under a worker).

Importing it (every flow module does) quiets Prefect's closing line for a flow run that ended in
a state bqhold gave it (`QuietExplainedEndings`).
"""

from __future__ import annotations

import logging

from prefect.exceptions import CancelledRun, FailedRun

from bqhold.tasks.core.errors import BqholdError

# What Prefect's run_flow logs, on "prefect.flow_runs", when the flow run's final state is not
# Completed (prefect/flow_engine.py, Prefect 3.8.8): under a worker the state's result is
# taken, which raises for a Failed or Cancelled state.
ENGINE_EXIT = "Engine execution exited with unexpected exception"


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


class QuietExplainedEndings(logging.Filter):
    """Drop Prefect's "Engine execution exited with unexpected exception" (and its traceback)
    for a flow run that ended Failed or Cancelled with bqhold's own one-line message.

    A bqhold flow returns that state for an error it raised on purpose (`flows/_blocks.py`
    `final_state`); under a worker (`python -m prefect.engine`) Prefect then takes the state's
    result, which raises that error (or FailedRun/CancelledRun), and logs it as unexpected.
    Any other exception, a genuine unexpected one, keeps the line and its traceback.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg != ENGINE_EXIT or not record.exc_info:
            return True
        return not isinstance(record.exc_info[1], (BqholdError, FailedRun, CancelledRun))


def quiet_explained_endings() -> None:
    """Install QuietExplainedEndings on the logger Prefect's flow engine writes flow runs' lines to."""
    logger = logging.getLogger("prefect.flow_runs")
    if not any(isinstance(existing, QuietExplainedEndings) for existing in logger.filters):
        logger.addFilter(QuietExplainedEndings())


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
    quiet_explained_endings()
    project_loggers_at_info()


quiet_explained_endings()
