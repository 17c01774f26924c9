"""The embeddings pipeline end to end, against a real local OpenAI-compatible service
(tests/agent_service.py): killed at random moments, stopped, refused, it delivers every record
exactly once, and each text is paid for once but for the calls in flight when the process died
(docs/design.md, invariant 11)."""

from __future__ import annotations

import json
import random
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from bqhold.tasks.core.faults import KILL_ENV
from tests.agent_service import EmbeddingService, ServiceBehaviour, fake_embedding
from tests.conftest import Workspace

KEY = "sk-test-0123456789"
RECORDS = 3_000
CHUNK, CONCURRENCY = 10, 4


@pytest.fixture
def service():
    with EmbeddingService(ServiceBehaviour(api_key=KEY, latency_s=0.005)) as running:
        yield running


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """Documents with ids; every 50th repeats an earlier id (a duplicate, never paid for) and
    every 401st is refused by the service."""
    lines = []
    for n in range(RECORDS):
        doc_id = n - 1 if n % 50 == 49 else n
        text = f"document {n} on topic {n % 17}" + (" REJECT" if n % 401 == 400 else "")
        lines.append(json.dumps({"id": doc_id, "text": text, "meta": {"n": n}}))
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def expected(docs: Path) -> tuple[dict[int, str], set[str]]:
    """The text each id must be staged with (its first record's) and the texts the service refuses."""
    staged, refused, seen = {}, set(), set()
    for line in docs.read_text().splitlines():
        record = json.loads(line)
        if record["id"] in seen:
            continue  # a duplicate: skipped before any call
        seen.add(record["id"])
        if "REJECT" in record["text"]:
            refused.add(record["text"])
        else:
            staged[record["id"]] = record["text"]
    return staged, refused


def args(docs: Path, service: EmbeddingService, *extra: str) -> tuple[str, ...]:
    return (
        "--pipeline",
        "embeddings",
        "--input",
        str(docs),
        "--key",
        "id",
        "--batch-size",
        "500",
        "--agent-url",
        service.url,
        "--agent-chunk-size",
        str(CHUNK),
        "--agent-concurrency",
        str(CONCURRENCY),
        *extra,
    )


def quarantined_here(workspace: Workspace) -> list[str]:
    """The lines of the quarantine files in the workspace's hold dir."""
    return [
        line
        for path in sorted(workspace.hold.glob("runs/*/quarantine/*.jsonl"))
        for line in path.read_text().splitlines()
    ]


def assert_delivered_once(workspace: Workspace, docs: Path, quarantine_lines: list[str] | None = None) -> None:
    staged, refused = expected(docs)
    with duckdb.connect(str(workspace.warehouse), read_only=True) as con:
        rows = con.execute("SELECT id, text, embedding FROM docs").fetchall()
    assert sorted(row[0] for row in rows) == sorted(staged)  # each id once, none missing
    assert all(row[1] == staged[row[0]] and row[2] == fake_embedding(row[1]) for row in rows)
    lines = quarantined_here(workspace) if quarantine_lines is None else quarantine_lines
    quarantined = [json.loads(line) for line in lines]
    assert {json.loads(entry["record"])["text"] for entry in quarantined} == refused
    assert all("content policy" in entry["reason"] for entry in quarantined)


def run_killed_during_calls(
    workspace: Workspace, command: tuple[str, ...], service: EmbeddingService, calls: int
) -> int:
    """Start the command, SIGKILL it once the service has received `calls` more requests (a
    moment in the middle of calling, not at a step of bqhold's); return its exit code."""
    process = subprocess.Popen(
        workspace.command(*command),
        cwd=workspace.root,
        env=workspace.env({"BQHOLD_AGENT_API_KEY": KEY}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    target, deadline = len(service.requests) + calls, time.monotonic() + 60
    while process.poll() is None and len(service.requests) < target and time.monotonic() < deadline:
        time.sleep(0.002)
    process.kill()
    return process.wait()


@pytest.mark.slow
def test_killed_at_random_moments_it_delivers_once_and_pays_again_only_for_calls_in_flight(
    workspace: Workspace, docs: Path, service: EmbeddingService
) -> None:
    chance = random.Random(13)
    command = args(docs, service)
    kills = 0
    for flushes in sorted(chance.sample(range(5, 60), 2)):  # just after the n-th write of answers
        killed = workspace.cli(*command, env={"BQHOLD_AGENT_API_KEY": KEY, KILL_ENV: f"answers_kept@{flushes}"})
        assert killed.code == -signal.SIGKILL, killed.output
        kills += 1
    for _ in range(2):  # in the middle of calling
        kills += run_killed_during_calls(workspace, command, service, chance.randint(1, 60)) == -signal.SIGKILL

    finished = workspace.cli(*command, env={"BQHOLD_AGENT_API_KEY": KEY})

    assert finished.code == 0, finished.output
    assert_delivered_once(workspace, docs)
    staged, _ = expected(docs)
    accepted = {text: service.paid_for(text) for text in staged.values()}
    assert min(accepted.values()) == 1
    paid_again = sum(count - 1 for count in accepted.values())
    # A kill loses at most two calls per worker: the one in flight, the last answered if not yet written.
    assert paid_again <= kills * 2 * CONCURRENCY * CHUNK, f"{paid_again} paid again over {kills} kills"
    assert finished.summary["status"] == "delivered"
    assert not list(workspace.hold.glob("runs/*/agent/*.arrows"))  # every answer is in a segment now
    assert finished.summary["agent"]["reused"] > 0  # answers of killed batches, taken from the call log


def test_a_refused_key_stops_with_one_line_and_the_right_key_resumes(
    workspace: Workspace, docs: Path, service: EmbeddingService
) -> None:
    refused = workspace.cli(*args(docs, service), env={"BQHOLD_AGENT_API_KEY": "sk-wrong-key-4567"})

    assert refused.code == 2, refused.output
    assert "HTTP 401" in refused.output and "BQHOLD_AGENT_API_KEY" in refused.output
    assert "Traceback" not in refused.output and "sk-wrong-key-4567" not in refused.output
    assert "sk-wrong-key-4567" not in json.dumps(refused.summary)

    resumed = workspace.cli(*args(docs, service), env={"BQHOLD_AGENT_API_KEY": KEY})

    assert resumed.code == 0, resumed.output
    assert_delivered_once(workspace, docs)


def test_a_stop_signal_during_calls_keeps_every_answer_so_the_resume_pays_for_nothing_twice(
    workspace: Workspace, docs: Path, service: EmbeddingService
) -> None:
    service.configure(latency_s=0.02)
    process = subprocess.Popen(
        workspace.command(*args(docs, service)),
        cwd=workspace.root,
        env=workspace.env({"BQHOLD_AGENT_API_KEY": KEY}),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 60
    while len(service.requests) < 60 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 128 + signal.SIGTERM, output

    resumed = workspace.cli(*args(docs, service), env={"BQHOLD_AGENT_API_KEY": KEY})

    assert resumed.code == 0, resumed.output
    assert_delivered_once(workspace, docs)
    staged, _ = expected(docs)
    assert {service.paid_for(text) for text in staged.values()} == {1}


@pytest.mark.slow
def test_on_a_durable_hold_a_new_container_pays_again_only_for_calls_in_flight(
    workspace: Workspace, docs: Path, service: EmbeddingService, gcs_bucket, gcs_emulator_env
) -> None:
    command = args(docs, service, "--hold-url", f"gs://{gcs_bucket.name}/holds/docs", "--hold-lease-s", "1")
    killed = workspace.cli(*command, env={"BQHOLD_AGENT_API_KEY": KEY, KILL_ENV: "answers_kept@40"})
    assert killed.code == -signal.SIGKILL, killed.output
    shutil.rmtree(workspace.hold)  # a new container: an empty disk, a Prefect home of its own
    fresh_home = str(workspace.root / "prefect-home-of-the-new-container")
    time.sleep(1.5)  # the dead container's lease runs out

    resumed = workspace.cli(*command, env={"BQHOLD_AGENT_API_KEY": KEY, "PREFECT_HOME": fresh_home})

    assert resumed.code == 0, resumed.output
    in_the_bucket = [  # each batch's quarantine file is in the durable HOLD₂, not on the new disk
        line
        for blob in gcs_bucket.list_blobs(prefix="holds/docs/runs/")
        if "/quarantine/" in blob.name
        for line in blob.download_as_text().splitlines()
    ]
    assert_delivered_once(workspace, docs, in_the_bucket)
    staged, _ = expected(docs)
    paid_again = sum(service.paid_for(text) - 1 for text in staged.values())
    assert paid_again <= 2 * CONCURRENCY * CHUNK, f"{paid_again} paid again after one kill"
    assert resumed.summary["agent"]["reused"] > 0  # answers of the batch in flight, fetched from the bucket
    assert any("/agent/answers-" in blob.name for blob in gcs_bucket.list_blobs(prefix="holds/docs/runs/"))

    durable = command[command.index("--hold-url") : command.index("--hold-url") + 4]
    cleaned = workspace.subcommand("cleanup", "--apply", *durable, env={"PREFECT_HOME": fresh_home})

    assert cleaned.code == 0, cleaned.output
    assert not any("/agent/" in blob.name for blob in gcs_bucket.list_blobs(prefix="holds/docs/runs/"))
