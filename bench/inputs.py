"""HOLD₁ that is not a plain local file: staging rate and peak RSS of the same events read plain,
gzip-compressed, and gzip-compressed from a bucket; and what resuming a compressed input costs.

    python bench/inputs.py --rows 1000000 --runs 3        # plain, .gz, gs:// .gz, interleaved
    python bench/inputs.py --rows 1000000 --resume        # resume in the middle of a 1M-row .gz

Each round runs the whole CLI (`--key event_id`, 50,000-row batches, fresh hold dir and warehouse)
on bench/events.py's events: the local file, the same bytes gzip-compressed, and that .gz as an
object of the Cloud Storage emulator the tests use (tests/emulator/storage_server.py). It prints
per variant the medians of the staging rate (rows written / stage_s) and the peak RSS.

`--resume` kills a run on the .gz at the checkpoint of its 10th batch, then runs the same command
again twice: with its spool copy kept (the same machine) and removed (another machine, which
decompresses again from the start); it prints each one's time to its first batch and its whole
run's time.
"""

from __future__ import annotations

import argparse
import gzip
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

BATCH_SIZE = 50_000
BUCKET = "bench-inputs"


def gzipped(source: Path) -> Path:
    """The events gzip-compressed beside them (made once)."""
    target = source.with_name(source.name + ".gz")
    if not target.exists():
        with open(source, "rb") as plain, gzip.open(target, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(plain, packed, 1 << 20)
    return target


def run(source: str, work: Path, env: dict[str, str], extra: tuple[str, ...] = ()) -> tuple[dict, float, int]:
    """One CLI run; (summary, peak RSS MB, exit code)."""
    command = bqhold_command(Path("."), work, BATCH_SIZE, ["--table", "events", *extra])
    command[command.index("--input") + 1] = source
    sampled = run_sampled(command, env)
    summary_path = work / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if sampled.returncode not in (0, -9):
        raise SystemExit(f"run failed ({sampled.returncode}):\n{sampled.stderr[-3000:]}")
    return summary, sampled.peak_rss_mb, sampled.returncode


def compare(variants: dict[str, str], runs: int, env: dict[str, str]) -> None:
    results: dict[str, list[tuple[float, float]]] = {label: [] for label in variants}
    for round_number in range(runs):
        for label, source in variants.items():
            work = Path(tempfile.mkdtemp(prefix="bqhold-inputs-"))
            summary, peak, _ = run(source, work, env)
            rate = summary["rows_written"] / summary["stage_s"]
            results[label].append((rate, peak))
            print(f"round {round_number + 1} {label:10}: {rate:>9,.0f} rows/s staging, peak {peak:.0f} MB", flush=True)
            shutil.rmtree(work, ignore_errors=True)
    plain = statistics.median(rate for rate, _ in results["plain"])
    for label, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        peak = statistics.median(p for _, p in rows)
        print(f"median {label:10}: {rate:>9,.0f} rows/s ({rate / plain:.2f}x plain), peak {peak:.0f} MB")


def resume(packed: Path, env: dict[str, str]) -> None:
    for label in ("spool kept", "spool gone"):
        work = Path(tempfile.mkdtemp(prefix="bqhold-inputs-"))
        _, _, code = run(str(packed), work, {**env, "BQHOLD_KILL_AT": "checkpoint_written@9"})
        assert code == -9, "the run was not killed"
        if label == "spool gone":
            shutil.rmtree(work / "hold" / "spool")
        started = time.monotonic()
        summary, peak, _ = run(str(packed), work, env)
        print(
            f"{label}: resumed at batch {summary['resumed_from_batch']}, first batch {summary['first_batch_s']:.2f} s "
            f"after start, stage {summary['stage_s']:.1f} s, whole command {time.monotonic() - started:.1f} s, "
            f"peak {peak:.0f} MB",
            flush=True,
        )
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--resume", action="store_true", help="measure resuming a compressed input instead")
    args = parser.parse_args()
    plain = events_file(args.rows)
    packed = gzipped(plain)
    if args.resume:
        resume(packed, dict(os.environ))
        return
    with StorageEmulator() as storage:
        bucket = storage.client().create_bucket(BUCKET)
        bucket.blob(packed.name).upload_from_filename(str(packed))
        env = {**os.environ, "STORAGE_EMULATOR_HOST": storage.endpoint}
        variants = {"plain": str(plain), "gzip": str(packed), "gs:// gzip": f"gs://{BUCKET}/{packed.name}"}
        compare(variants, args.runs, env)


if __name__ == "__main__":
    main()
