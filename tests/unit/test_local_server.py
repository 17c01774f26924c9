"""Why Prefect's temporary server did not start, in a few words, from what its process left."""

from __future__ import annotations

import signal

import pytest

from bqhold.flows._deploy_steps import require_env
from bqhold.flows._local_server import failure_cause

SERVER_LOG = """\
12:00:01.000 | ERROR   | uvicorn.error - Traceback (most recent call last):
  File "/venv/lib/python3.11/site-packages/sqlalchemy/engine/base.py", line 149, in __init__
sqlite3.DatabaseError: file is not a database

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
sqlalchemy.exc.DatabaseError: (sqlite3.DatabaseError) file is not a database
(Background on this error at: https://sqlalche.me/e/20/4xp6)

12:00:01.009 | ERROR   | uvicorn.error - Application startup failed. Exiting.
"""


def test_the_last_exception_in_the_log_is_the_cause():
    cause = failure_cause(SERVER_LOG, 3)

    assert cause == "sqlalchemy.exc.DatabaseError: (sqlite3.DatabaseError) file is not a database"


def test_a_kill_by_the_oom_killer_is_named_as_such():
    assert failure_cause("", -signal.SIGKILL) == "killed by SIGKILL, out of memory?"
    assert failure_cause("", -signal.SIGTERM) == "killed by SIGTERM"


def test_without_an_exception_the_exit_code_is_the_cause():
    assert failure_cause("nothing useful\n", 3) == "it exited with code 3"


def test_a_server_that_never_answered_says_so():
    assert "did not answer within" in failure_cause(SERVER_LOG, None)


def test_a_required_deploy_variable_is_handed_on(monkeypatch):
    monkeypatch.setenv("BQHOLD_IMAGE", " registry.example/bqhold:1 ")

    assert require_env("BQHOLD_IMAGE", "needed") == {"value": "registry.example/bqhold:1"}


@pytest.mark.parametrize("value", [None, "", "  "])
def test_a_missing_deploy_variable_stops_the_deploy_in_one_line(monkeypatch, capsys, value):
    if value is None:
        monkeypatch.delenv("BQHOLD_IMAGE", raising=False)
    else:
        monkeypatch.setenv("BQHOLD_IMAGE", value)

    with pytest.raises(SystemExit) as info:
        require_env("BQHOLD_IMAGE", "the cloud-run deployments need it")
    assert info.value.code == 1
    assert capsys.readouterr().err == "bqhold: BQHOLD_IMAGE is not set: the cloud-run deployments need it\n"
