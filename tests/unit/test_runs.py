"""choose_run: start, resume or report a delivered run; refuse unsafe resumes with a clear message."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.errors import ConfigError, ResumeRefused
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.runs import Action, JobIdentity, RunRecord, choose_run, new_run_id

NOW = datetime(2026, 11, 22, 10, 15, 0, tzinfo=UTC)
JOB = JobIdentity(
    pipeline="generic", input_spec="data/*.jsonl", table="events", key="id", warehouse="duckdb://w.duckdb"
)
INPUTS = (InputFile("/data/a.jsonl", InputFormat.JSONL, 1000, 1),)
FP = "fp-1"


def record(
    run_id: str,
    status: Phase = Phase.STAGING,
    *,
    job: JobIdentity = JOB,
    fingerprint: str = FP,
    inputs: tuple[InputFile, ...] = INPUTS,
    age_minutes: int = 10,
) -> RunRecord:
    return RunRecord(run_id, job, inputs, fingerprint, status, NOW - timedelta(minutes=age_minutes))


def choose(known: list[RunRecord], *, requested_id: str | None = None, fresh: bool = False, job: JobIdentity = JOB):
    return choose_run(job, requested_id, fresh, known, NOW)


def test_no_runs_yet_starts_a_new_run_with_a_sortable_id():
    choice = choose([])

    assert choice.action is Action.NEW
    assert choice.existing is None
    assert re.fullmatch(r"generic-20261122T101500Z-[0-9a-f]{4}", choice.run_id)


def test_new_run_ids_differ_between_calls():
    assert len({new_run_id("generic", NOW) for _ in range(20)}) > 1


def test_unfinished_run_of_the_same_job_is_resumed():
    run = record("r1", Phase.STAGING)

    choice = choose([run])

    assert (choice.action, choice.run_id, choice.existing) == (Action.RESUME, "r1", run)


@pytest.mark.parametrize("status", [Phase.LOADING, Phase.UNVERIFIED])
def test_loaded_but_not_delivered_runs_are_resumed(status):
    assert choose([record("r1", status)]).action is Action.RESUME


def test_latest_unfinished_run_is_resumed():
    older, newer = record("old", age_minutes=60), record("new", age_minutes=5)

    assert choose([newer, older]).run_id == "new"


def test_delivered_runs_lead_to_a_new_run_whose_files_are_decided_afterwards():
    choice = choose([record("r1", Phase.DELIVERED)])

    assert choice.action is Action.NEW
    assert choice.run_id != "r1" and choice.abandon == ()


@pytest.mark.parametrize("status", [Phase.ABANDONED, Phase.CLEANED])
def test_abandoned_and_cleaned_runs_are_not_resumed(status):
    assert choose([record("r1", status)]).action is Action.NEW


def test_runs_of_other_jobs_are_ignored_without_a_run_id():
    other = replace(JOB, table="other")

    choice = choose([record("r1", Phase.STAGING, job=other)])

    assert choice.action is Action.NEW and choice.abandon == ()


def test_fresh_gives_up_the_unfinished_staging_runs_of_the_job_and_starts_anew():
    older, newer = record("old", age_minutes=60), record("new", age_minutes=5)
    other_job = record("other", job=replace(JOB, table="other"))

    choice = choose([newer, older, other_job], fresh=True)

    assert choice.action is Action.NEW
    assert choice.run_id not in ("old", "new")
    assert [run.run_id for run in choice.abandon] == ["old", "new"]


@pytest.mark.parametrize("status", [Phase.LOADING, Phase.UNVERIFIED])
def test_fresh_refuses_to_start_beside_a_run_that_may_have_loaded_rows(status):
    with pytest.raises(ResumeRefused) as info:
        choose([record("r1", status)], fresh=True)

    message = str(info.value)
    assert "abandon --run-id r1" in message and "without --fresh" in message
    assert info.value.exit_code == 2


def test_requested_unknown_run_id_starts_a_run_with_that_id():
    choice = choose([record("r1")], requested_id="nightly-2026-11-22")

    assert (choice.action, choice.run_id) == (Action.NEW, "nightly-2026-11-22")


def test_requested_existing_unfinished_run_is_resumed():
    choice = choose([record("r1"), record("r2")], requested_id="r1")

    assert (choice.action, choice.run_id) == (Action.RESUME, "r1")


def test_requested_existing_delivered_run_is_reported():
    choice = choose([record("r1", Phase.DELIVERED)], requested_id="r1")

    assert choice.action is Action.ALREADY_DELIVERED


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (Phase.STAGING, Action.RESUME),
        (Phase.LOADING, Action.RESUME),
        (Phase.UNVERIFIED, Action.RESUME),
        (Phase.DELIVERED, Action.ALREADY_DELIVERED),
        (Phase.CLEANED, Action.ALREADY_DELIVERED),
    ],
)
def test_a_requested_run_is_resumed_until_it_was_delivered(status, action):
    assert choose([record("r1", status)], requested_id="r1").action is action


def test_requested_abandoned_run_is_refused():
    with pytest.raises(ConfigError, match="abandoned; choose another --run-id"):
        choose([record("r1", Phase.ABANDONED)], requested_id="r1")


def test_requested_run_of_another_job_is_refused_naming_the_difference():
    other = replace(JOB, table="other_table", key=None)

    with pytest.raises(ResumeRefused) as info:
        choose([record("r1", job=other)], requested_id="r1")

    message = str(info.value)
    assert "another job" in message
    assert "table was 'other_table', now 'events'" in message
    assert "key was None, now 'id'" in message


def test_fresh_with_an_existing_run_id_is_a_config_error():
    with pytest.raises(ConfigError, match="--fresh"):
        choose([record("r1")], requested_id="r1", fresh=True)


def test_fresh_with_a_new_run_id_starts_it_and_gives_up_the_unfinished_one():
    choice = choose([record("r1")], requested_id="r2", fresh=True)

    assert choice.run_id == "r2" and [run.run_id for run in choice.abandon] == ["r1"]


def test_a_new_run_id_without_fresh_leaves_the_unfinished_run_alone():
    choice = choose([record("r1")], requested_id="r2")

    assert (choice.action, choice.run_id, choice.abandon) == (Action.NEW, "r2", ())


@pytest.mark.parametrize("bad_id", ["", "-starts-with-dash", "has space", "../escape", "a/b", "x" * 101, "semi;colon"])
def test_invalid_run_ids_are_rejected(bad_id):
    with pytest.raises(ConfigError, match="run id"):
        choose([], requested_id=bad_id)


def test_job_differences_list_each_changed_field():
    other = JobIdentity("other", "b.csv", "t2", None, "bigquery://p/d")

    assert len(JOB.differences(other)) == 5
    assert JOB.differences(JOB) == []


def test_jobs_deliver_alike_when_pipeline_table_and_warehouse_agree_whatever_the_pattern_or_key():
    assert JOB.delivers_like(replace(JOB, input_spec="data/day-*.jsonl", key=None))
    assert not JOB.delivers_like(replace(JOB, table="other"))
    assert not JOB.delivers_like(replace(JOB, warehouse="bigquery://p/d"))
    assert not JOB.delivers_like(replace(JOB, pipeline="web_events"))
