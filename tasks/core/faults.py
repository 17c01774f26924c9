"""Fault injection at named steps of the batch path, for tests that kill the real process.

`BQHOLD_KILL_AT=step@batch` SIGKILLs the process when `step` is reached for that batch
(`step` alone: the first time it is reached). `BQHOLD_FAIL_AT` raises `InjectedFailure`
instead, which a Prefect retry can recover from; with `BQHOLD_FAIL_ONCE=/some/file` it fails
only while that file does not exist, and creates it (so the retry of the same deployment,
with the same environment, goes through). `BQHOLD_WAIT_AT=step@batch` holds the process there
until the file `BQHOLD_WAIT_FOR` exists (at most a minute): a run kept in the middle while a test
looks at it. All are read when a step is reached, never at import, and cost one dictionary
lookup when unset.
"""

from __future__ import annotations

import os
import signal
import time

KILL_ENV = "BQHOLD_KILL_AT"
FAIL_ENV = "BQHOLD_FAIL_AT"
FAIL_ONCE_ENV = "BQHOLD_FAIL_ONCE"
WAIT_ENV = "BQHOLD_WAIT_AT"
WAIT_FOR_ENV = "BQHOLD_WAIT_FOR"
_WAIT_AT_MOST_S = 60.0

# The named steps, in the order a run reaches them (tests iterate over this).
BATCH_STEPS = (
    "batch_read",  # the batch is parsed into memory
    "batch_transformed",  # the transform ran, dedupe decided
    "segment_fsynced",  # the segment's temp file is durable, not yet renamed
    "segment_renamed",  # the segment file is in place, no ledger row yet
    "ledger_committed",  # DuckDB holds the rows and the ledger row; checkpoint still old
    "checkpoint_written",  # the checkpoint names the next batch
)
LOAD_STEPS = (
    "load_committed",  # the warehouse holds the group; HOLD₂ does not know yet
    "load_recorded",  # HOLD₂'s ledger marks the group loaded
    "verified",  # the warehouse's counts matched; run not yet marked delivered
)
# Reached only when BigQuery loads through a staging bucket, before "load_committed".
BUCKET_STEPS = ("bucket_staged",)  # the group's segments are in the bucket; no load job yet
# Reached only with a durable HOLD₂ (--hold-url), between "segment_renamed" and "ledger_committed".
DURABLE_STEPS = (
    "hold_uploaded",  # the batch's files are in the bucket; its journal entry is not
    "journal_written",  # the journal holds the batch; the working copy has not committed it
)
# Reached only by agent pipelines, once per write of answers to the call log; its number counts
# the writes of the process (`answers_kept@3`: after the third), not batches.
AGENT_STEPS = ("answers_kept",)  # answers are durable in the call log; their batch is not staged
# Reached only by --write-mode merge or replace, after the staging table verified.
PUBLISH_STEPS = ("published",)  # the table holds the run (MERGE or swap done); the run is not delivered yet
STEPS = BATCH_STEPS + LOAD_STEPS + BUCKET_STEPS + DURABLE_STEPS + AGENT_STEPS + PUBLISH_STEPS


class InjectedFailure(RuntimeError):
    """Raised at a step named by BQHOLD_FAIL_AT."""


def _matches(spec: str | None, step: str, batch: int | None) -> bool:
    if not spec:
        return False
    name, _, at = spec.partition("@")
    if name != step:
        return False
    return not at or (batch is not None and int(at) == batch)


def reached(step: str, batch: int | None = None) -> None:
    """Mark that the run reached `step` (of `batch`); kill or fail here if asked to."""
    if _matches(os.environ.get(KILL_ENV), step, batch):
        os.kill(os.getpid(), signal.SIGKILL)
    if _matches(os.environ.get(WAIT_ENV), step, batch):
        deadline = time.monotonic() + _WAIT_AT_MOST_S
        while not os.path.exists(os.environ.get(WAIT_FOR_ENV, "")) and time.monotonic() < deadline:
            time.sleep(0.05)
    if _matches(os.environ.get(FAIL_ENV), step, batch):
        marker = os.environ.get(FAIL_ONCE_ENV)
        if marker:
            if os.path.exists(marker):
                return
            open(marker, "w").close()
        raise InjectedFailure(f"injected failure at {step} of batch {batch}")
