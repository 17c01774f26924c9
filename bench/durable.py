"""A durable HOLD₂ (`--hold-url`) against the local one: staging rate, requests per batch, and the
time a new container takes to resume.

    python bench/durable.py --rows 1000000 --runs 3            # staging rate and requests, interleaved
    python bench/durable.py --resume-at 1000000                 # resume on an empty disk at 1M rows staged

Runs the whole CLI on bench/events.py's events (`--key event_id`, 50,000-row batches) against the
Cloud Storage emulator the tests use (tests/emulator/storage_server.py, with GCS's generation
preconditions), through a pass-through proxy (tests/faultproxy.py, no faults) that counts the
requests. Each round runs the local-only run, then the `--hold-url` run, with a fresh hold dir
and warehouse each, and prints per variant the medians of: staging rate (rows written / stage_s),
peak RSS, and for `--hold-url` the storage requests per batch.

`--resume-at N` stages N rows of an input of N + 200,000 and kills the run at the checkpoint of
the batch that reaches N (BQHOLD_KILL_AT); then the same command is run again twice: on the same
hold dir (resume on the same machine) and on an empty one (a new container). It prints for each
the time from process start to its first new batch (`first_batch_s`), the requests and bytes the
new container read before it, and the whole run's time.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import bqhold_command, events_file, run_sampled  # noqa: E402
from tests.emulator.storage_server import StorageEmulator  # noqa: E402
from tests.faultproxy import FaultProxy  # noqa: E402

BATCH_SIZE = 50_000
BUCKET = "bench-hold"


def _run(source: Path, work: Path, extra: list[str], env: dict[str, str]) -> tuple[dict, float, int]:
    """One CLI run; (summary, peak RSS MB, exit code)."""
    run = run_sampled(bqhold_command(source, work, BATCH_SIZE, extra), env)
    summary_path = work / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if run.returncode not in (0, -9):
        raise SystemExit(f"run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return summary, run.peak_rss_mb, run.returncode


def _rate(summary: dict) -> float:
    return summary["rows_written"] / summary["stage_s"] if summary.get("stage_s") else 0.0


def compare(source: Path, runs: int, proxy: FaultProxy, env: dict[str, str]) -> None:
    """Local-only and --hold-url runs, interleaved; medians per variant."""
    results: dict[str, list[tuple[float, float, float]]] = {"local": [], "hold-url": []}
    for round_number in range(runs):
        for label in results:
            work = Path(tempfile.mkdtemp(prefix="bqhold-durable-"))
            extra = ["--hold-url", f"gs://{BUCKET}/r{round_number}"] if label == "hold-url" else []
            before = proxy.stats["forwarded"]
            summary, peak, _ = _run(source, work, extra, env)
            requests = (proxy.stats["forwarded"] - before) / max(summary["batches"], 1)
            results[label].append((_rate(summary), peak, requests))
            print(
                f"round {round_number + 1} {label:8}: {_rate(summary):>9,.0f} rows/s staging, peak {peak:.0f} MB, "
                f"{summary['batches']} batches, {requests:.1f} storage requests per batch",
                flush=True,
            )
            shutil.rmtree(work, ignore_errors=True)
    local_rate = statistics.median(rate for rate, _, _ in results["local"])
    for label, rows in results.items():
        rate = statistics.median(r for r, _, _ in rows)
        print(
            f"median {label:8}: {rate:>9,.0f} rows/s ({rate / local_rate:.2f}x local), "
            f"peak {statistics.median(p for _, p, _ in rows):.0f} MB, "
            f"{statistics.median(q for _, _, q in rows):.1f} requests per batch"
        )


def resume(rows: int, proxy: FaultProxy, env: dict[str, str]) -> None:
    """Time to the first new batch after a kill at `rows` rows staged: on the same disk, and on an
    empty one (each its own killed run, on its own prefix)."""
    source = events_file(rows + 200_000)
    last_batch = rows // BATCH_SIZE - 1
    for label in ("same disk", "empty disk"):
        work = Path(tempfile.mkdtemp(prefix="bqhold-durable-"))
        extra = ["--hold-url", f"gs://{BUCKET}/resume-{time.time_ns()}", "--hold-lease-s", "5"]
        _, _, code = _run(source, work, extra, {**env, "BQHOLD_KILL_AT": f"checkpoint_written@{last_batch}"})
        assert code == -9, "the run was not killed"
        time.sleep(6)  # the killed run's lease expires
        if label == "empty disk":
            shutil.rmtree(work / "hold")
        home = tempfile.mkdtemp(prefix="bqhold-home-")
        before = proxy.stats["forwarded"]
        summary, peak, _ = _run(source, work, extra, {**env, "PREFECT_HOME": home})
        print(
            f"{label:10}: resumed at batch {summary['resumed_from_batch']}, first new batch "
            f"{summary['first_batch_s']:.2f} s after start, whole run {summary['duration_s']:.1f} s, "
            f"{proxy.stats['forwarded'] - before} storage requests, peak {peak:.0f} MB",
            flush=True,
        )
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resume-at", type=int, default=0, help="measure resume on an empty disk at N rows staged")
    args = parser.parse_args()
    with StorageEmulator() as storage, FaultProxy(storage.endpoint) as proxy:
        storage.client().create_bucket(BUCKET)
        env = {**os.environ, "STORAGE_EMULATOR_HOST": proxy.endpoint}
        if args.resume_at:
            resume(args.resume_at, proxy, env)
        else:
            compare(events_file(args.rows), args.runs, proxy, env)


if __name__ == "__main__":
    main()
