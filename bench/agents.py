"""The embeddings pipeline against the fake embeddings service: calls/s against the concurrency
ceiling, Prefect API traffic per minute, and peak RSS flat across batches (issue: agent pipelines).

    python bench/agents.py                                   # 100k records at concurrency 1, 8, 32; then memory
    python bench/agents.py --runs 3                          # each configuration 3 times, interleaved; medians
    python bench/agents.py --rows 10000 --target-s 10 --no-memory   # a quick look
    python bench/agents.py --memory                          # only the memory part: 1M vs 100k records
    python bench/agents.py --batch-size 1000 --save runs.jsonl   # 100 and 1,000 batches; every run's numbers kept

Inputs are short JSONL records ({"id": n, "text": "..."}, ~60 bytes, every text distinct), generated
once into bench/out/. Every run is the whole CLI (bench/run_bench.py's command with `--pipeline
embeddings --key id`, a fresh hold dir and DuckDB warehouse, BQHOLD_AGENT_API_KEY unset) against one
local Prefect server shared by all runs (bench/bound.py's CountedPrefectServer), and against its own
fake service (tests/agent_service.py's EmbeddingService, `--api-key ''`) in its own process, started
by this script (`python bench/agents.py serve ...`) so that it can hand back the arrival time of
every request it saw, its most requests in flight, how many it had in flight on average (sampled
every 10 ms while any was), and the CPU time it used.

Throughput: at latency L and `--agent-concurrency` C the ceiling is C / L calls/s. The achieved rate
is the service's: embeddings requests / (last arrival − first arrival + L), so Prefect's start-up
and the load into the warehouse do not count; the ratio to the ceiling should be ≥ 0.9. The chunk
size (records per call) of each concurrency is chosen so its calls last about `--target-s`
seconds at the ceiling (or given with `--chunk-size`). "idle s" sums the pauses between two
arrivals longer than L + 20 ms, less L each (between batches, or a stalled client); "busy
c/s" is the rate without them (the calls within batches) and its ratio to the ceiling; "client
ms" is the CLI's mean call time (its summary's agent.call_seconds / calls) and "client in-fl" its
mean calls in flight over the span (call_seconds / span), "svc in-fl" the service's. Also printed:
the whole command's wall time, records/s over it, the CLI's CPU seconds, and the Prefect API's
HTTP requests (access log) and events (its database) per minute of the command's wall time, as
bench/api_budget.py counts them.

Memory: `--memory-rows` (100k and 1M) at latency 0, concurrency 32, chunk size 256; peak RSS as
the run's summary reports it (`peak_rss_mb`: the whole run, the load into the warehouse
included), as sampled from outside every 20 ms, and the most sampled while the service saw calls
(first to last arrival: the batches, without the load after them); and the ratio of the largest
input's peaks to the smallest's (the issue wants ≤ 1.15).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import itertools
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api_budget import event_kinds  # noqa: E402
from bench.bound import _EVENT_FLUSH_S, CountedPrefectServer  # noqa: E402
from bench.run_bench import OUT, bqhold_command  # noqa: E402

BATCH_SIZE = 50_000  # the CLI's default
MEMORY_CONCURRENCY, MEMORY_CHUNK_SIZE = 32, 256
IDLE_SLACK_S = 0.02  # see idle_gap
RSS_SAMPLE_S = 0.02
WORDS = ("short", "text", "about", "orders", "late", "helpful", "support", "refund", "shipping", "quality")


def idle_gap(latency_s: float) -> float:
    """A pause between two arrivals longer than this is idle time (less the latency, during which
    the earlier call was still answered): between batches, or a client that stalled. The 20 ms
    are more than a call's own overhead at concurrency 1 (a few ms), so that is not idle."""
    return latency_s + IDLE_SLACK_S


def records_file(rows: int) -> Path:
    """`rows` records {"id": n, "text": "..."} of about 60 bytes, every text distinct (made once)."""
    path = OUT / f"agents-{rows}.jsonl"
    if not path.exists():
        print(f"generating {rows:,} records into {path} ...", file=sys.stderr, flush=True)
        OUT.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        with open(partial, "w") as out:
            for n in range(rows):
                words = " ".join(WORDS[(n // 10**k) % len(WORDS)] for k in range(3))
                out.write(json.dumps({"id": n, "text": f"record {n} {words}"}) + "\n")
        partial.rename(path)
    return path


# --- the fake service, in its own process ---------------------------------------------------------


def serve(argv: list[str]) -> None:
    """`python bench/agents.py serve --latency-s S --out PATH`: tests/agent_service.py's service
    (no API key) until SIGTERM; then what it saw, as JSON, into PATH (and one line to stderr)."""
    from tests.agent_service import EMBEDDINGS_PATH, EmbeddingService, ServiceBehaviour

    parser = argparse.ArgumentParser(prog="python bench/agents.py serve")
    parser.add_argument("--latency-s", type=float, default=0.0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    samples: list[int] = []
    with EmbeddingService(ServiceBehaviour(latency_s=args.latency_s, api_key=None)) as service:
        print(service.url, flush=True)
        while not done.wait(0.01):
            in_flight = service._in_flight
            if in_flight:
                samples.append(in_flight)
        cpu_s = time.process_time()
        embeddings = [r for r in service.requests if (r.method, r.path) == ("POST", EMBEDDINGS_PATH)]
        arrivals, walls = [r.arrived for r in embeddings], [r.wall for r in embeddings]
        seen = {
            "requests": len(service.requests),
            "statuses": dict(sorted(collections.Counter(str(r.status) for r in embeddings).items())),
            "paid": service.total_paid(),
            "max_concurrent": service.max_concurrent,
            "errors": service.errors,
            "mean_in_flight": statistics.fmean(samples) if samples else 0.0,
            "cpu_s": cpu_s,
            "first_wall": walls[0] if walls else None,
            "last_wall": walls[-1] if walls else None,
        }
    args.out.write_text(json.dumps({**seen, "arrivals": arrivals}))
    print(json.dumps(seen), file=sys.stderr, flush=True)


class Service:
    """`serve` in a subprocess (context manager): `url` while it runs, `seen` once it stopped."""

    def __init__(self, latency_s: float, work: Path) -> None:
        self.latency_s, self.out = latency_s, work / "service.json"
        self.url = ""
        self.seen: dict = {}

    def __enter__(self) -> Service:
        command = [sys.executable, str(Path(__file__).resolve()), "serve", "--latency-s", str(self.latency_s)]
        self.process = subprocess.Popen(
            [*command, "--out", str(self.out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.url = self.process.stdout.readline().strip()
        if not self.url.startswith("http"):
            raise SystemExit(f"the fake service did not start: {self.process.stderr.read()[-2000:]}")
        with urllib.request.urlopen(f"{self.url}/models", timeout=5) as answer:  # answers before any run
            assert answer.status == 200
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.communicate(timeout=60)
        self.seen = json.loads(self.out.read_text())


# --- one run ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampled:
    """A finished command: wall time, exit code, stderr, and its RSS over time (epoch s, MB)."""

    wall_s: float
    returncode: int
    stderr: str
    rss: list[tuple[float, float]]

    @property
    def peak_rss_mb(self) -> float:
        return max((mb for _, mb in self.rss), default=0.0)

    def peak_between(self, start: float | None, end: float | None) -> float:
        """The most RSS sampled from `start` to `end` (epoch seconds)."""
        if start is None or end is None:
            return 0.0
        return max((mb for at, mb in self.rss if start <= at <= end), default=0.0)


def run_timeline(command: list[str], env: dict[str, str]) -> Sampled:
    """bench/run_bench.py's run_sampled, keeping every sample of the command's own RSS (not only
    the peak), so that the peak while the agent was called can be told from the load's after it."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    watched = psutil.Process(process.pid)
    rss: list[tuple[float, float]] = []
    stderr_chunks: list[str] = []
    reader = threading.Thread(target=lambda: stderr_chunks.append(process.stderr.read()), daemon=True)
    reader.start()
    while process.poll() is None:
        try:
            rss.append((time.time(), watched.memory_info().rss / 2**20))
        except psutil.Error:
            break
        time.sleep(RSS_SAMPLE_S)
    process.wait()
    reader.join()
    return Sampled(time.monotonic() - started, process.returncode, "".join(stderr_chunks), rss)


@dataclass(frozen=True)
class Run:
    """One CLI run of the embeddings pipeline against the fake service."""

    part: str  # "throughput" or "memory"
    rows: int
    concurrency: int
    chunk_size: int
    latency_s: float
    wall_s: float  # the whole command
    cpu_s: float  # the command's CPU time (user + system)
    peak_rss_mb: float  # as the run's summary reports it
    sampled_rss_mb: float  # as sampled from outside every 20 ms
    calls_rss_mb: float  # the most sampled while the service saw calls (first to last arrival)
    batches: int
    agent: dict  # the summary's agent usage
    calls: int  # embeddings requests the service saw
    statuses: dict
    span_s: float  # first arrival to last arrival + latency
    idle_s: float  # pauses between arrivals longer than idle_gap(latency), less the latency
    max_concurrent: int
    service_in_flight: float
    service_cpu_s: float
    http_requests: int  # to the Prefect API during the command
    started_at: float
    ended_at: float
    events: int = 0  # Prefect events that occurred during the command

    @property
    def ceiling(self) -> float:
        return self.concurrency / self.latency_s if self.latency_s else float("inf")

    @property
    def rate(self) -> float:
        """Calls per second as the service saw them arrive."""
        return self.calls / self.span_s if self.span_s else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.ceiling

    @property
    def busy_rate(self) -> float:
        """Calls per second while the client was calling: idle time (between batches) left out."""
        busy = self.span_s - self.idle_s
        return self.calls / busy if busy > 0 else 0.0

    @property
    def client_call_ms(self) -> float:
        calls = self.agent.get("calls") or 0
        return 1000 * self.agent.get("call_seconds", 0.0) / calls if calls else 0.0

    @property
    def client_in_flight(self) -> float:
        return self.agent.get("call_seconds", 0.0) / self.span_s if self.span_s else 0.0

    def per_minute(self, count: int) -> float:
        return count / (self.wall_s / 60)


def run_once(
    server: CountedPrefectServer,
    part: str,
    rows: int,
    concurrency: int,
    chunk_size: int,
    latency_s: float,
    batch_size: int,
) -> Run:
    """The whole CLI once on `rows` records, with a fresh service, hold dir and warehouse."""
    source = records_file(rows)
    work = Path(tempfile.mkdtemp(prefix="bqhold-agents-"))
    env = {k: v for k, v in os.environ.items() if k != "BQHOLD_AGENT_API_KEY"}
    env["PREFECT_API_URL"] = server.url
    with Service(latency_s, work) as service:
        extra = ["--pipeline", "embeddings", "--agent-url", service.url]
        extra += ["--agent-concurrency", str(concurrency), "--agent-chunk-size", str(chunk_size)]
        command = bqhold_command(source, work, batch_size, extra)
        command[command.index("--key") + 1] = "id"
        before, started_at = server.requests(), time.time()
        cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        sampled = run_timeline(command, env)
        cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        http, ended_at = server.requests() - before, time.time()
    if sampled.returncode != 0:
        raise SystemExit(f"run failed ({sampled.returncode}):\n{sampled.stderr[-3000:]}")
    summary = json.loads((work / "summary.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    if summary["rows_written"] != rows:
        print(f"  warning: {summary['rows_written']:,} rows written of {rows:,}", file=sys.stderr)
    seen = service.seen
    arrivals = seen["arrivals"]
    span = arrivals[-1] - arrivals[0] + latency_s if arrivals else 0.0
    idle = sum(gap - latency_s for gap in (b - a for a, b in itertools.pairwise(arrivals)) if gap > idle_gap(latency_s))
    cpu = (cpu_after.ru_utime - cpu_before.ru_utime) + (cpu_after.ru_stime - cpu_before.ru_stime)
    return Run(
        part,
        rows,
        concurrency,
        chunk_size,
        latency_s,
        sampled.wall_s,
        cpu,
        summary["peak_rss_mb"],
        sampled.peak_rss_mb,
        sampled.peak_between(seen["first_wall"], seen["last_wall"]),
        summary["batches"],
        summary.get("agent") or {},
        len(arrivals),
        seen["statuses"],
        span,
        idle,
        seen["max_concurrent"],
        seen["mean_in_flight"],
        seen["cpu_s"],
        http,
        started_at,
        ended_at,
    )


def progress_line(r: Run) -> str:
    calls = r.agent.get("calls", 0)
    return (
        f"  {r.part:10} {r.rows:>9,} rows  c={r.concurrency:<3} chunk={r.chunk_size:<4} wall {r.wall_s:6.1f}s  "
        f"{r.calls:,} requests ({calls:,} calls by the CLI, statuses {r.statuses})  span {r.span_s:6.1f}s  "
        f"{r.rate:7.1f} calls/s  svc max in flight {r.max_concurrent}  peak {r.peak_rss_mb:.0f} MB"
    )


def with_events(runs: list[Run], events: list[tuple[float, bool]]) -> list[Run]:
    """The runs with the number of Prefect events that occurred during each."""
    return [dataclasses.replace(r, events=sum(r.started_at <= at <= r.ended_at for at, _ in events)) for r in runs]


# --- tables -------------------------------------------------------------------------------------------


def _median(runs: list[Run], value) -> float:
    return statistics.median(value(r) for r in runs)


def throughput_table(runs: list[Run]) -> str:
    """Medians per concurrency: the service's calls/s against the ceiling, the command, the API;
    then where the time went: the client's calls, the service's requests in flight, CPU."""
    lines = [
        f"{'conc':>5}{'chunk':>6}{'calls':>8}{'span s':>8}{'calls/s':>9}{'ceiling':>8}{'ratio':>7}{'idle s':>7}"
        f"{'busy c/s':>9}{'ratio':>6}{'wall s':>8}{'rec/s':>8}{'HTTP/min':>9}{'events/min':>11}"
    ]
    diagnosis = [
        f"{'conc':>5}{'client ms':>10}{'client in-fl':>13}{'svc in-fl':>10}{'svc max':>8}{'svc cpu s':>10}"
        f"{'CLI cpu s':>10}{'CLI cpu/wall':>13}"
    ]
    for concurrency in sorted({r.concurrency for r in runs}):
        group = [r for r in runs if r.concurrency == concurrency]
        m = lambda value, g=group: _median(g, value)  # noqa: E731
        lines.append(
            f"{concurrency:>5}{group[0].chunk_size:>6}{m(lambda r: r.calls):>8,.0f}{m(lambda r: r.span_s):8.1f}"
            f"{m(lambda r: r.rate):9.1f}{group[0].ceiling:8.0f}{m(lambda r: r.ratio):7.2f}{m(lambda r: r.idle_s):7.1f}"
            f"{m(lambda r: r.busy_rate):9.1f}{m(lambda r: r.busy_rate / r.ceiling):6.2f}{m(lambda r: r.wall_s):8.1f}"
            f"{m(lambda r: r.rows / r.wall_s):8,.0f}{m(lambda r: r.per_minute(r.http_requests)):9.0f}"
            f"{m(lambda r: r.per_minute(r.events)):11.0f}"
        )
        diagnosis.append(
            f"{concurrency:>5}{m(lambda r: r.client_call_ms):10.1f}{m(lambda r: r.client_in_flight):13.1f}"
            f"{m(lambda r: r.service_in_flight):10.1f}{m(lambda r: r.max_concurrent):8.0f}"
            f"{m(lambda r: r.service_cpu_s):10.1f}{m(lambda r: r.cpu_s):10.1f}{m(lambda r: r.cpu_s / r.wall_s):13.2f}"
        )
    return "\n".join([*lines, "", *diagnosis])


def memory_table(runs: list[Run]) -> str:
    """Medians per input size: peak RSS of the whole run (the summary's) and while the agent was
    called (sampled), each against the smallest input's."""
    sizes = sorted({r.rows for r in runs})
    peaks = {rows: _median([r for r in runs if r.rows == rows], lambda r: r.peak_rss_mb) for rows in sizes}
    calling = {rows: _median([r for r in runs if r.rows == rows], lambda r: r.calls_rss_mb) for rows in sizes}
    lines = [
        f"{'rows':>10}{'batches':>8}{'calls':>7}{'wall s':>8}{'rec/s':>8}{'peak MB':>9}{'x smallest':>11}"
        f"{'sampled MB':>11}{'calls MB':>9}{'x smallest':>11}{'HTTP/min':>9}{'events/min':>11}"
    ]
    for rows in sizes:
        group = [r for r in runs if r.rows == rows]
        lines.append(
            f"{rows:>10,}{group[0].batches:>8}{_median(group, lambda r: r.calls):>7,.0f}"
            f"{_median(group, lambda r: r.wall_s):8.1f}{_median(group, lambda r: r.rows / r.wall_s):8,.0f}"
            f"{peaks[rows]:9.0f}{peaks[rows] / peaks[sizes[0]]:11.2f}"
            f"{_median(group, lambda r: r.sampled_rss_mb):11.0f}{calling[rows]:9.0f}"
            f"{calling[rows] / calling[sizes[0]]:11.2f}"
            f"{_median(group, lambda r: r.per_minute(r.http_requests)):9.0f}"
            f"{_median(group, lambda r: r.per_minute(r.events)):11.0f}"
        )
    return "\n".join(lines)


# --- main -----------------------------------------------------------------------------------------------


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def chunk_sizes(args: argparse.Namespace, concurrencies: list[int]) -> dict[int, int]:
    """Records per call for each concurrency: given, or so that the calls last about --target-s."""
    if args.chunk_size:
        given = _ints(args.chunk_size)
        if len(given) != len(concurrencies):
            raise SystemExit("--chunk-size needs one value per --concurrency")
        return dict(zip(concurrencies, given, strict=True))
    return {c: max(1, round(args.rows * args.latency_s / (c * args.target_s))) for c in concurrencies}


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        serve(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000, help="records of the throughput runs")
    parser.add_argument("--runs", type=int, default=1, help="runs of each configuration, interleaved")
    parser.add_argument("--concurrency", default="1,8,32", help="--agent-concurrency values, comma-separated")
    parser.add_argument("--chunk-size", default="", help="--agent-chunk-size per concurrency (default: see --target-s)")
    parser.add_argument("--target-s", type=float, default=75.0, help="seconds of calls per run at the ceiling")
    parser.add_argument("--latency-s", type=float, default=0.05, help="the service's latency (throughput runs)")
    parser.add_argument("--batch-size", type=int, default=BATCH_SIZE)
    parser.add_argument("--memory", action="store_true", help="only the memory part")
    parser.add_argument("--no-memory", action="store_true", help="leave the memory part out")
    parser.add_argument("--memory-rows", default="100000,1000000", help="records of the memory runs, small first")
    parser.add_argument("--save", type=Path, help="also write every run's numbers to this file, one JSON a line")
    args = parser.parse_args()
    concurrencies = _ints(args.concurrency)
    chunks = chunk_sizes(args, concurrencies)
    memory_rows = _ints(args.memory_rows) if not args.no_memory else []
    throughput = not args.memory
    for rows in ([args.rows] if throughput else []) + memory_rows:  # generated before any timing
        records_file(rows)
    work = Path(tempfile.mkdtemp(prefix="bqhold-agents-server-"))
    runs: list[Run] = []
    with CountedPrefectServer(work) as server:
        for number in range(args.runs):
            print(f"round {number + 1}/{args.runs}", file=sys.stderr, flush=True)
            for concurrency in concurrencies if throughput else []:
                run = run_once(
                    server, "throughput", args.rows, concurrency, chunks[concurrency], args.latency_s, args.batch_size
                )
                print(progress_line(run), file=sys.stderr, flush=True)
                runs.append(run)
            for rows in memory_rows:
                run = run_once(server, "memory", rows, MEMORY_CONCURRENCY, MEMORY_CHUNK_SIZE, 0.0, args.batch_size)
                print(progress_line(run), file=sys.stderr, flush=True)
                runs.append(run)
        time.sleep(_EVENT_FLUSH_S)
        runs = with_events(runs, event_kinds(work / "prefect.db"))
    shutil.rmtree(work, ignore_errors=True)
    if args.save:
        args.save.write_text("".join(json.dumps(dataclasses.asdict(r)) + "\n" for r in runs))
    print(f"medians of {args.runs} interleaved run(s); batch size {args.batch_size:,}; one Prefect server for all runs")
    if throughput:
        print(
            f"\nthroughput: {args.rows:,} records, service latency {args.latency_s * 1000:g} ms; calls/s = the "
            "service's requests / (last − first arrival + latency); ceiling = concurrency / latency"
        )
        print(throughput_table([r for r in runs if r.part == "throughput"]))
    if memory_rows:
        print(
            f"\nmemory: latency 0, concurrency {MEMORY_CONCURRENCY}, chunk size {MEMORY_CHUNK_SIZE}; "
            "peak MB = the summary's peak_rss_mb (the whole run, load included); calls MB = the most sampled "
            "while the service saw calls; the issue wants the largest ≤ 1.15 x the smallest"
        )
        print(memory_table([r for r in runs if r.part == "memory"]))


if __name__ == "__main__":
    main()
