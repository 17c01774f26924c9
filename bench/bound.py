"""bqhold against the DuckDB bound (and dlt), interleaved in the same minutes, on the same files.

    python bench/bound.py --rows 1000000 5000000 --runs 3     # issue 11's "Speed" measurement
    python bench/bound.py --rows 20000 100000 --runs 1        # a quick look

Per run, for each dataset (bench/events.py's events, and the same with a 200-character `text`
field) and each size, it runs one after the other: the bound (DuckDB's one statement, see
bench/rivals.py), bqhold's whole CLI (bench/run_bench.py's command, Prefect included, against
one local Prefect server started here for all runs) and dlt (if installed: `pip install -e
'.[bench]'`). It prints per tool, dataset and size the medians over runs of wall time, rows/s
and peak RSS; the marginal rate (large − small rows) / (large − small time) per tool and
dataset; the ratio bqhold/bound; and the Prefect API traffic per minute of the bqhold runs:
HTTP requests (the server's access log) and events (task-run states travel as events over one
websocket, not as requests; counted in the server's database by the time they occurred).
bqhold's time is its staging time (`stage_s`: HOLD₁→HOLD₂ with dedupe), the others' is their
whole process.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import events_file, measure_file, run_sampled  # noqa: E402

DATASETS = {"events": 0, "events+text200": 200}  # name -> length of the text field
BATCH_SIZE = 50_000
# One line of uvicorn's access log per HTTP request.
_REQUEST = re.compile(rb'"(?:GET|POST|PUT|PATCH|DELETE) /api/')
_EVENT_FLUSH_S = 10.0  # the server stores received events in batches every few seconds


@dataclass(frozen=True)
class Result:
    """One tool's run on one input."""

    tool: str
    dataset: str
    rows: int
    wall_s: float
    work_s: float  # the time rows/s is computed from
    peak_rss_mb: float
    api_requests: int | None = None  # Prefect API requests during the run (bqhold only)
    started_at: float = 0.0  # epoch seconds, to find the events the run sent
    ended_at: float = 0.0
    api_events: int | None = None  # Prefect events that occurred during the run (bqhold only)

    @property
    def rate(self) -> float:
        """Input rows per second of work."""
        return self.rows / self.work_s


class CountedPrefectServer:
    """A local Prefect server (private database) whose access log counts the API requests."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.log = work / "prefect-server.log"
        self.url = ""
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> CountedPrefectServer:
        port = _free_port()
        self.url = f"http://127.0.0.1:{port}/api"
        env = {
            **os.environ,
            "PREFECT_UI_ENABLED": "0",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "0",
            "PREFECT_SERVER_LOGGING_LEVEL": "INFO",  # Prefect sets uvicorn's loggers, access log included
            "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{self.work / 'prefect.db'}",
        }
        app_dir = Path(find_spec("prefect").origin).parent.parent
        command = [sys.executable, "-m", "uvicorn", "--app-dir", str(app_dir), "--factory"]
        command += ["prefect.server.api.server:create_app", "--host", "127.0.0.1", "--port", str(port)]
        command += ["--log-level", "info", "--lifespan", "on"]
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        self._wait_healthy()
        return self

    def _wait_healthy(self, timeout_s: float = 90.0) -> None:
        """Block until the server answers its health check."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the Prefect server exited; see {self.log}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise SystemExit(f"the Prefect server did not answer within {timeout_s:.0f} s; see {self.log}")

    def requests(self) -> int:
        """HTTP requests logged so far."""
        return len(_REQUEST.findall(self.log.read_bytes()))

    def event_times(self) -> list[float]:
        """When each stored event occurred (epoch seconds), once the server has stored the last ones."""
        time.sleep(_EVENT_FLUSH_S)
        with sqlite3.connect(self.work / "prefect.db") as database:
            rows = database.execute("SELECT occurred FROM events").fetchall()
        return [datetime.fromisoformat(occurred).timestamp() for (occurred,) in rows]

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_rival(job: str, dataset: str, rows: int, source: Path) -> Result:
    """bench/rivals.py's `job` on `source` in a fresh directory."""
    work = Path(tempfile.mkdtemp(prefix=f"bqhold-bench-{job}-"))
    run = run_sampled([sys.executable, str(ROOT / "bench" / "rivals.py"), job, str(source), str(work)])
    shutil.rmtree(work, ignore_errors=True)
    if run.returncode != 0:
        raise SystemExit(f"{job} failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return Result(job, dataset, rows, run.wall_s, run.wall_s, run.peak_rss_with_children_mb)


def run_bqhold(server: CountedPrefectServer, dataset: str, rows: int, source: Path) -> Result:
    """The whole CLI against the shared server, with the requests it made to it."""
    before, started_at = server.requests(), time.time()
    measured = measure_file(source, BATCH_SIZE, [], {**os.environ, "PREFECT_API_URL": server.url})
    requests, ended_at = server.requests() - before, time.time()
    stage_s, peak = measured.summary["stage_s"], measured.peak_rss_mb
    return Result("bqhold", dataset, rows, measured.wall_s, stage_s, peak, requests, started_at, ended_at)


def with_events(results: list[Result], event_times: list[float]) -> list[Result]:
    """The bqhold results with the number of events that occurred during each."""
    return [
        dataclasses.replace(r, api_events=sum(r.started_at <= t <= r.ended_at for t in event_times))
        if r.api_requests is not None
        else r
        for r in results
    ]


def one_round(server: CountedPrefectServer, sizes: list[int], tools: list[str]) -> list[Result]:
    """Every tool on every dataset and size, once, one after the other."""
    results = []
    for dataset, text_chars in DATASETS.items():
        for rows in sizes:
            source = events_file(rows, text_chars)
            for tool in tools:
                if tool == "bqhold":
                    result = run_bqhold(server, dataset, rows, source)
                else:
                    result = run_rival(tool, dataset, rows, source)
                print(
                    f"  {tool:7} {dataset:15} {rows:>10,}  {result.wall_s:7.2f}s  {result.rate:>9,.0f} rows/s  "
                    f"{result.peak_rss_mb:5.0f} MB",
                    file=sys.stderr,
                    flush=True,
                )
                results.append(result)
    return results


@dataclass(frozen=True)
class Median:
    """The medians of one tool's runs on one dataset and size."""

    wall_s: float
    work_s: float
    rate: float
    peak_rss_mb: float
    requests_per_min: float | None
    events_per_min: float | None


def median_of(runs: list[Result]) -> Median:
    """Medians over the runs of one tool, dataset and size."""
    per_min = [r.api_requests / (r.wall_s / 60) for r in runs if r.api_requests is not None]
    events_per_min = [r.api_events / (r.wall_s / 60) for r in runs if r.api_events is not None]
    return Median(
        statistics.median(r.wall_s for r in runs),
        statistics.median(r.work_s for r in runs),
        statistics.median(r.rate for r in runs),
        statistics.median(r.peak_rss_mb for r in runs),
        statistics.median(per_min) if per_min else None,
        statistics.median(events_per_min) if events_per_min else None,
    )


def marginal(small: Median, large: Median, rows: tuple[int, int]) -> float:
    """(large − small rows) / (large − small time): the rate without fixed costs."""
    return (rows[1] - rows[0]) / (large.work_s - small.work_s) if large.work_s > small.work_s else float("nan")


def table(results: list[Result], sizes: list[int], tools: list[str]) -> str:
    """The medians per tool, dataset and size, the marginal rates and bqhold/bound."""
    header = f"{'tool':8}{'dataset':16}{'rows':>10}{'wall s':>9}{'rows/s':>11}{'peak MB':>9}{'×bound':>8}"
    lines = [header + f"{'API req/min':>13}{'events/min':>12}"]
    for dataset in DATASETS:
        medians = {
            (tool, rows): median_of([r for r in results if (r.tool, r.dataset, r.rows) == (tool, dataset, rows)])
            for tool in tools
            for rows in sizes
        }
        for tool in tools:
            for rows in sizes:
                m, bound = medians[tool, rows], medians["duckdb", rows]
                per_min = f"{m.requests_per_min:13,.0f}" if m.requests_per_min is not None else ""
                per_min += f"{m.events_per_min:12,.0f}" if m.events_per_min is not None else ""
                lines.append(
                    f"{tool:8}{dataset:16}{rows:>10,}{m.wall_s:9.2f}{m.rate:11,.0f}{m.peak_rss_mb:9.0f}"
                    f"{m.rate / bound.rate:8.2f}{per_min}"
                )
            if len(sizes) >= 2:
                pair = (sizes[0], sizes[-1])
                rate = marginal(medians[tool, pair[0]], medians[tool, pair[1]], pair)
                bound = marginal(medians["duckdb", pair[0]], medians["duckdb", pair[1]], pair)
                growth = medians[tool, pair[1]].peak_rss_mb / medians[tool, pair[0]].peak_rss_mb - 1
                lines.append(
                    f"{tool:8}{dataset:16}{'marginal':>10}{'':9}{rate:11,.0f}{growth:+8.0%} {rate / bound:8.2f}"
                )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000], help="sizes, small first")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dlt", action="store_true", help="leave dlt out even if it is installed")
    args = parser.parse_args()
    tools = ["duckdb", "bqhold"] + (["dlt"] if find_spec("dlt") and not args.no_dlt else [])
    for text_chars in DATASETS.values():  # generated before any timing
        for rows in args.rows:
            events_file(rows, text_chars)
    work = Path(tempfile.mkdtemp(prefix="bqhold-bench-server-"))
    results: list[Result] = []
    with CountedPrefectServer(work) as server:
        for number in range(args.runs):
            print(f"round {number + 1}/{args.runs}", file=sys.stderr, flush=True)
            results += one_round(server, args.rows, tools)
        results = with_events(results, server.event_times())
    shutil.rmtree(work, ignore_errors=True)
    print(
        f"medians of {args.runs} interleaved run(s); duckdb = the bound; bqhold's rows/s = staging; "
        "marginal rows: peak RSS growth small→large, then ×bound of the marginal rates"
    )
    print(table(results, args.rows, tools))


if __name__ == "__main__":
    main()
