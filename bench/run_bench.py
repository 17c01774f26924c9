"""Benchmark the main job: rows/s and peak RSS of `python flows/run.py` on generated events.

    python bench/run_bench.py --rows 1000000 5000000            # HOLD₁ → HOLD₂ → DuckDB
    python bench/run_bench.py --rows 0                           # fixed cost only (tiny input)
    python bench/run_bench.py --rows 1000000 --bigquery          # deliver to a local BigQuery emulator
    python bench/run_bench.py --rows 1000000 --bigquery --bucket # … loading through a local GCS emulator

Per size it prints wall time, staging time and rate (HOLD₁→HOLD₂ with dedupe), load+verify
time, the command's peak RSS (alone and with Prefect's temporary server), the time to the
first committed batch and the RSS just before it. With two sizes it also prints the marginal
staging rate: (N2 - N1) / (stage time N2 - stage time N1), which removes fixed costs.
Inputs are generated once into bench/out/ (deterministic, ~350 B per event, 1% duplicates).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.events import write as write_events  # noqa: E402

OUT = ROOT / "bench" / "out"


@dataclass
class Measurement:
    """One benchmark run."""

    rows: int
    wall_s: float
    summary: dict
    peak_rss_mb: float
    peak_rss_with_server_mb: float

    @property
    def stage_rate(self) -> float:
        """Rows read per second of staging."""
        return self.summary["rows_read"] / self.summary["stage_s"] if self.summary.get("stage_s") else 0.0


def events_file(rows: int, text_chars: int = 0) -> Path:
    """The deterministic input for `rows` events (with a text field of `text_chars`), generated once."""
    path = OUT / (f"events-{rows}.jsonl" if not text_chars else f"events-{rows}-text{text_chars}.jsonl")
    if not path.exists():
        print(f"generating {rows:,} events into {path} ...", file=sys.stderr)
        write_events(path.with_suffix(".tmp"), rows=rows, duplicate_rate=0.01, text_chars=text_chars).rename(path)
    return path


@dataclass(frozen=True)
class Sampled:
    """A finished subprocess: its wall time, peak RSS (alone and with its children) and stderr."""

    wall_s: float
    peak_rss_mb: float
    peak_rss_with_children_mb: float
    returncode: int
    stderr: str


def run_sampled(command: list[str], env: dict[str, str] | None = None) -> Sampled:
    """Run `command`, sampling its memory (and its children's) every 20 ms until it ends."""
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    watched = psutil.Process(process.pid)
    peak = peak_all = 0.0
    while process.poll() is None:
        try:
            own = watched.memory_info().rss / 2**20
            children = sum(c.memory_info().rss for c in watched.children(recursive=True)) / 2**20
        except psutil.Error:
            break
        peak, peak_all = max(peak, own), max(peak_all, own + children)
        time.sleep(0.02)
    stderr = process.communicate()[1]
    return Sampled(time.monotonic() - started, peak, peak_all, process.returncode, stderr)


def bqhold_command(source: Path, work: Path, batch_size: int, extra: list[str], checkout: Path = ROOT) -> list[str]:
    """The main job on `source`, with its hold dir, DuckDB warehouse and summary under `work`
    (`checkout`'s flows/run.py: another checkout's code needs its package on PYTHONPATH too)."""
    return [
        sys.executable,
        str(checkout / "flows" / "run.py"),
        "--input",
        str(source),
        "--key",
        "event_id",
        "--hold-dir",
        str(work / "hold"),
        "--warehouse",
        f"duckdb://{work / 'warehouse.duckdb'}",
        "--batch-size",
        str(batch_size),
        "--summary-json",
        str(work / "summary.json"),
        "--no-progress",
        *extra,
    ]


def measure_file(
    source: Path, batch_size: int, extra: list[str], env: dict[str, str] | None = None, checkout: Path = ROOT
) -> Measurement:
    """Run the command once on `source` with a fresh hold dir and warehouse, sampling its memory."""
    work = Path(tempfile.mkdtemp(prefix="bqhold-bench-"))
    run = run_sampled(bqhold_command(source, work, batch_size, extra, checkout), env)
    if run.returncode != 0:
        raise SystemExit(f"run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    summary = json.loads((work / "summary.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return Measurement(summary["rows_read"], run.wall_s, summary, run.peak_rss_mb, run.peak_rss_with_children_mb)


def measure(rows: int, batch_size: int, extra: list[str], env: dict[str, str] | None = None) -> Measurement:
    """`measure_file` on the generated events of `rows` rows."""
    return measure_file(events_file(max(rows, 1000)), batch_size, extra, env)


def measure_bigquery(rows: int, batch_size: int, extra: list[str], bucket: bool) -> Measurement:
    """`measure` against a fresh emulator dataset; also prints the load jobs BigQuery ran. With
    `bucket`, segments go through a Cloud Storage emulator and are loaded by URI."""
    import os

    from tests.emulator.server import BigQueryEmulator
    from tests.emulator.storage_server import StorageEmulator

    with StorageEmulator() as storage, BigQueryEmulator(storage_emulator_host=storage.endpoint) as emulator:
        client = emulator.client()
        client.create_dataset("bench")
        env = {**os.environ, "BIGQUERY_EMULATOR_HOST": emulator.endpoint, "STORAGE_EMULATOR_HOST": storage.endpoint}
        if bucket:
            storage.client().create_bucket("bench")
            extra = ["--staging-bucket", "gs://bench", *extra]
        result = measure(rows, batch_size, ["--warehouse", f"bigquery://{emulator.project}/bench", *extra], env)
        jobs = [job for job in client.list_jobs() if job.job_id.startswith("bqhold_")]
        load_rate = result.summary["rows_loaded"] / result.summary["load_s"] if result.summary["load_s"] else 0
        print(
            f"bigquery: {len(jobs)} load job(s) for {result.summary['batches']} batches; "
            f"load+verify {result.summary['load_s']:.2f}s = {load_rate:,.0f} rows/s",
            flush=True,
        )
        client.close()
    return result


def report(m: Measurement) -> str:
    """One block of results."""
    s = m.summary
    first = f"{s['first_batch_s']:.2f}s" if s.get("first_batch_s") is not None else "n/a"
    before = f"{s['first_batch_rss_mb']:.0f} MB" if s.get("first_batch_rss_mb") is not None else "n/a"
    return (
        f"rows {s['rows_read']:>10,}  wall {m.wall_s:7.2f}s  stage {s['stage_s']:7.2f}s "
        f"({m.stage_rate:>9,.0f} rows/s)  load+verify {s['load_s']:6.2f}s  "
        f"peak RSS {m.peak_rss_mb:5.0f} MB (with server {m.peak_rss_with_server_mb:5.0f} MB)  "
        f"first batch at {first} (RSS before it {before})  batches {s['batches']}  "
        f"written {s['rows_written']:,} dups {s['duplicates_skipped']:,}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--batch-size", type=int, default=50_000)
    parser.add_argument("--bigquery", action="store_true", help="deliver to a local BigQuery emulator (tests/emulator)")
    parser.add_argument("--bucket", action="store_true", help="with --bigquery: load through a GCS emulator bucket")
    parser.add_argument("extra", nargs="*", help="more options for flows/run.py (after --)")
    args = parser.parse_args()
    results = []
    for rows in args.rows:
        if args.bigquery:
            result = measure_bigquery(rows, args.batch_size, args.extra, args.bucket)
        else:
            result = measure(rows, args.batch_size, args.extra)
        results.append(result)
        print(report(result), flush=True)
    if len(results) >= 2:
        small, large = results[0], results[-1]
        extra_rows = large.summary["rows_read"] - small.summary["rows_read"]
        extra_time = large.summary["stage_s"] - small.summary["stage_s"]
        growth = (large.peak_rss_mb - small.peak_rss_mb) / small.peak_rss_mb
        print(f"marginal staging rate: {extra_rows / extra_time:,.0f} rows/s; peak RSS growth {growth:+.1%}")


if __name__ == "__main__":
    main()
