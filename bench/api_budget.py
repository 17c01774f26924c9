"""Prefect API traffic of one bqhold run per batch size (docs/design.md, invariant 12).

    python bench/api_budget.py                                  # 1M rows, batches of 50k and 5k
    python bench/api_budget.py --rows 200000 --batch-size 2000  # a quick look

Each run is the whole CLI (bench/run_bench.py's command) against one local Prefect server
(bench/bound.py's CountedPrefectServer). Per run it prints the batches, the wall time, the HTTP
requests (the server's access log), the events (task-run states travel as events over a
websocket, not as requests) split into task-run events and the rest, and both per minute of the
run. Smaller batches stand for a faster machine: more batches per minute. Invariant 12 holds
when the per-minute figures do not grow with the number of batches.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bound import _EVENT_FLUSH_S, CountedPrefectServer  # noqa: E402
from bench.run_bench import events_file, measure_file  # noqa: E402


@dataclass(frozen=True)
class Traffic:
    """What one run cost the Prefect API."""

    batch_size: int
    batches: int
    wall_s: float
    stage_s: float
    requests: int
    task_run_events: int
    other_events: int
    started_at: float
    ended_at: float

    def per_minute(self, count: int) -> float:
        """`count` per minute of the run's wall time."""
        return count / (self.wall_s / 60)


def run_once(server: CountedPrefectServer, source: Path, batch_size: int) -> Traffic:
    """One run of the CLI on `source`, with the HTTP requests it made (events are counted later)."""
    before, started_at = server.requests(), time.time()
    measured = measure_file(source, batch_size, [], {**os.environ, "PREFECT_API_URL": server.url})
    requests, ended_at = server.requests() - before, time.time()
    summary = measured.summary
    return Traffic(
        batch_size, summary["batches"], measured.wall_s, summary["stage_s"], requests, 0, 0, started_at, ended_at
    )


def event_kinds(database: Path) -> list[tuple[float, bool]]:
    """When each stored event occurred (epoch seconds) and whether it is a task run's."""
    with sqlite3.connect(database) as db:
        rows = db.execute("SELECT occurred, event FROM events").fetchall()
    return [
        (datetime.fromisoformat(occurred).timestamp(), event.startswith("prefect.task-run."))
        for occurred, event in rows
    ]


def with_events(run: Traffic, events: list[tuple[float, bool]]) -> Traffic:
    """The run with the events that occurred during it, task runs' and others."""
    during = [is_task for at, is_task in events if run.started_at <= at <= run.ended_at]
    task_events = sum(during)
    return Traffic(**{**run.__dict__, "task_run_events": task_events, "other_events": len(during) - task_events})


def table(runs: list[Traffic]) -> str:
    """One line per run: batches, time, requests and events, in total and per minute."""
    lines = [
        f"{'batch':>7}{'batches':>8}{'wall s':>8}{'stage s':>8}{'HTTP':>7}{'task ev':>8}{'other ev':>9}"
        f"{'HTTP/min':>10}{'events/min':>11}"
    ]
    for r in runs:
        events = r.task_run_events + r.other_events
        lines.append(
            f"{r.batch_size:>7,}{r.batches:>8}{r.wall_s:8.1f}{r.stage_s:8.1f}{r.requests:>7}{r.task_run_events:>8}"
            f"{r.other_events:>9}{r.per_minute(r.requests):10.0f}{r.per_minute(events):11.0f}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[50_000, 5_000])
    args = parser.parse_args()
    source = events_file(args.rows)
    work = Path(tempfile.mkdtemp(prefix="bqhold-api-budget-"))
    with CountedPrefectServer(work) as server:
        runs = [run_once(server, source, size) for size in args.batch_size]
        time.sleep(_EVENT_FLUSH_S)
        events = event_kinds(work / "prefect.db")
    shutil.rmtree(work, ignore_errors=True)
    print(f"{args.rows:,} rows; Prefect API traffic per run (HTTP requests and events)")
    print(table([with_events(run, events) for run in runs]))


if __name__ == "__main__":
    main()
