"""The memory guard (docs/design.md, invariant 8) under real limits: a container-style cgroup
memory limit, a tight budget, and real allocation failures inside a batch — each run still ends
with every record exactly once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.events import write as write_events
from tests.conftest import ROOT, Workspace, warehouse_counts


def _memory_cgroup_dir() -> Path | None:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return Path("/sys/fs/cgroup/memory") / path.lstrip("/")
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    """A child memory cgroup (v1) this test may limit and put processes in."""
    parent = _memory_cgroup_dir()
    if parent is None or not os.access(parent, os.W_OK):
        pytest.skip("no writable cgroup v1 memory hierarchy on this machine")
    group = parent / f"bqhold-test-{uuid.uuid4().hex[:8]}"
    group.mkdir()
    try:
        yield group
    finally:
        group.rmdir()


@pytest.fixture(scope="module")
def events(tmp_path_factory) -> Path:
    return write_events(tmp_path_factory.mktemp("memory") / "events.jsonl", rows=300_000, duplicate_rate=0)


@pytest.mark.slow
def test_under_a_cgroup_limit_a_fixed_batch_is_killed_and_the_guarded_rerun_completes(
    workspace: Workspace, events: Path, memory_cgroup: Path
) -> None:
    (memory_cgroup / "memory.limit_in_bytes").write_text(str(340 * 2**20))

    def join_cgroup() -> None:
        (memory_cgroup / "cgroup.procs").write_text(str(os.getpid()))

    command = workspace.command("--input", str(events), "--batch-size", "200000")
    env = workspace.env()
    # An explicit budget far above the real limit blinds the guard: 200,000-row batches.
    blind = subprocess.run(
        [*command, "--memory-limit-mb", "100000"], env=env, preexec_fn=join_cgroup, capture_output=True, text=True
    )
    assert blind.returncode == -9, "the kernel's OOM killer ended the unguarded run"

    summary = workspace.root / "guarded.json"
    guarded = subprocess.run(
        [*command, "--summary-json", str(summary)], env=env, preexec_fn=join_cgroup, capture_output=True, text=True
    )
    assert guarded.returncode == 0, guarded.stdout + guarded.stderr
    assert "resuming run" in guarded.stderr, "HOLD₂ survived the OOM kill"
    result = json.loads(summary.read_text())
    assert result["guard_shrinks"] >= 1 and result["final_batch_size"] < 200_000
    assert "cgroup" in guarded.stderr, "the guard said why it shrank: the cgroup's limit"
    assert warehouse_counts(workspace.warehouse) == (300_000, 300_000)


@pytest.mark.slow
def test_tight_budget_shrinks_the_batches_and_delivers_exactly_once(workspace: Workspace, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=100_000, duplicate_rate=0)
    result = workspace.cli("--input", str(data), "--batch-size", "100000", "--memory-limit-mb", "450")
    assert result.code == 0, result.output
    assert result.summary["guard_shrinks"] >= 1
    assert result.summary["final_batch_size"] < 100_000
    assert "batch size 100,000 ->" in result.output
    assert warehouse_counts(workspace.warehouse) == (100_000, 100_000)


@pytest.mark.slow
def test_under_a_tight_budget_the_batch_size_settles_well_above_the_floor(workspace: Workspace, tmp_path: Path) -> None:
    # Between batches RSS stays near the warning level (memory the allocators keep and the next
    # batch reuses): sized from those readings, batches fell to the 1,000-row floor and stayed.
    data = write_events(tmp_path / "events.jsonl", rows=200_000, duplicate_rate=0.01)
    result = workspace.cli("--input", str(data), "--key", "event_id", "--memory-limit-mb", "400")
    assert result.code == 0, result.output
    # Ten times the floor, and within the budget: the allocators hand each batch's memory back
    # (measured: 50,000-row batches throughout, peak 361-364 MB; 7-20k rows before they did).
    assert result.summary["final_batch_size"] >= 10_000
    assert result.summary["batches"] <= 20
    assert result.summary["peak_rss_mb"] <= 400
    assert warehouse_counts(workspace.warehouse) == (result.summary["rows_written"],) * 2


HUNGRY = textwrap.dedent(
    """
    import resource, sys
    sys.path.insert(0, {root!r})
    import polars as pl
    import psutil
    from bqhold.flows._runner import pipeline_flow
    from bqhold.flows.generic import transform
    from bqhold.tasks.core.pipeline import Pipeline

    def hungry(frame: pl.DataFrame) -> pl.DataFrame:
        scratch = bytearray(frame.height * 100_000)  # 100 KB of working memory per row
        del scratch
        return transform(frame)

    flow = pipeline_flow(Pipeline("hungry", hungry, "allocates a lot per row"))
    vms = psutil.Process().memory_info().vms
    resource.setrlimit(resource.RLIMIT_AS, (vms + 3 * 2**30, resource.RLIM_INFINITY))
    print(flow(input={input!r}, hold_dir={hold!r}, warehouse={warehouse!r}, batch_size=40000, key="event_id"))
    """
)


@pytest.mark.slow
def test_memory_error_in_a_batch_is_retried_at_half_size(workspace: Workspace, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=60_000, duplicate_rate=0)
    script = tmp_path / "hungry.py"
    script.write_text(
        HUNGRY.format(
            root=str(ROOT), input=str(data), hold=str(workspace.hold), warehouse=f"duckdb://{workspace.warehouse}"
        )
    )
    env = {**os.environ, "PREFECT_API_URL": workspace.api_url}
    done = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ran out of memory" in done.stderr and "retrying it at 20,000 rows" in done.stderr
    summary = eval(done.stdout.strip().splitlines()[-1])  # the flow's returned summary dict
    assert summary["oom_retries"] >= 1 and summary["final_batch_size"] <= 20_000
    assert warehouse_counts(workspace.warehouse) == (60_000, 60_000)


def long_text_records(path: Path, rows: int) -> Path:
    """~2 KB of text per record: cheap to stage, heavy for the warehouse load (~100 MB per 50,000)."""
    text = "".join(chr(97 + (i * 7919) % 26) if i % 9 else " " for i in range(100_000))
    with open(path, "w") as handle:
        for i in range(rows):
            start = (i * 7919) % 90_000
            handle.write(json.dumps({"event_id": f"e{i}", "text": text[start : start + 2000]}) + "\n")
    return path


@pytest.mark.slow
def test_the_memory_budget_covers_the_warehouse_load_and_verify(workspace: Workspace, tmp_path: Path) -> None:
    data = long_text_records(tmp_path / "notes.jsonl", rows=50_000)
    result = workspace.cli("--input", str(data), "--table", "events", "--memory-limit-mb", "400")
    assert result.code == 0, result.output
    assert warehouse_counts(workspace.warehouse) == (50_000, 50_000)
    import duckdb

    with duckdb.connect(str(workspace.hold / "hold.duckdb"), read_only=True) as con:
        peaks = dict(con.execute("SELECT stage, peak_rss_mb FROM v_memory_by_stage").fetchall())
    assert peaks["load"] <= 400 and peaks["verify"] <= 400, peaks
