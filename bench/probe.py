"""Benchmark HOLD₂'s dedupe index per 50k-key batch, against 1M and 5M stored keys: the probe
(`HoldStore.find_duplicates`: hash the keys, join on the hash, fetch the few hits' stored keys by
rowid) and the commit of the batch's new keys (`HoldStore.store_keys` in one transaction, as a
batch's commit adds them), with the peak RSS of each.

    python bench/probe.py                          # 1M and 5M keys, 3 rounds of 5 batches
    python bench/probe.py --keys 1000000 --rounds 5
    python bench/probe.py --duplicates 1           # a file sent again: every key a hit

Each round runs one process per size, in turn, on a copy of that size's key store (made once in
bench/out/, spread over runs of 20 batches as staging leaves them), so a busy neighbour slows
every size alike and no round sees another's keys. Each batch holds 1% keys already stored
(--duplicates), the rest new, like bench/events.py's duplicates. Each process probes once
untimed first (its first query pays DuckDB's setup, ~0.5 s); "RSS before" is the process with
HOLD₂ open and its batches made, before any probe.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OUT = ROOT / "bench" / "out"
TABLE, WAREHOUSE = "events", "duckdb:///bench.duckdb"
BATCH_KEYS = 50_000
BATCHES_PER_RUN = 20


def key_name(number: int) -> str:
    return f"evt_{number:09d}"


def key_store(keys: int) -> Path:
    """A hold dir whose dedupe index holds `keys` keys, generated once."""
    from bqhold.tasks.core.layout import HoldLayout
    from bqhold.tasks.storage.hold_store import HoldStore

    root = OUT / f"probe-keys-v3-{keys}"
    done = root / "ready"
    if not done.exists():
        print(f"storing {keys:,} keys into {root} ...", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
        with HoldStore(HoldLayout(root), memory_limit_mb=512) as store:
            for batch, first in enumerate(range(0, keys, BATCH_KEYS)):
                names = pl.Series("key", [key_name(n) for n in range(first, min(keys, first + BATCH_KEYS))])
                hashes = store.find_duplicates(WAREHOUSE, TABLE, names).hashes
                run_id = f"run-{batch // BATCHES_PER_RUN}"
                store.store_keys(TABLE, WAREHOUSE, run_id, batch % BATCHES_PER_RUN, pl.DataFrame([names, hashes]))
        done.touch()
    return root


def batch_keys(stored: int, seed: int, duplicates: float) -> pl.Series:
    """50k keys, the fraction `duplicates` of them already stored."""
    rng = random.Random(seed)
    fresh = stored + seed * BATCH_KEYS  # beyond every stored key
    return pl.Series(
        "key", [key_name(rng.randrange(stored) if rng.random() < duplicates else fresh + i) for i in range(BATCH_KEYS)]
    )


def worker(keys: int, batches: int, seed: int, duplicates: float) -> dict:
    """Probe and commit `batches` batches in this process, on a copy of the key store."""
    from bqhold.tasks.core.layout import HoldLayout
    from bqhold.tasks.core.memory import peak_rss_bytes
    from bqhold.tasks.storage.hold_store import HoldStore

    with tempfile.TemporaryDirectory(dir=OUT) as copy:
        shutil.copytree(key_store(keys), copy, dirs_exist_ok=True)
        with HoldStore(HoldLayout(Path(copy))) as store:  # the product's own cache cap
            inputs = [batch_keys(keys, seed + n, duplicates) for n in range(batches)]
            rss_before = peak_rss_bytes() / 2**20
            store.find_duplicates(WAREHOUSE, TABLE, batch_keys(keys, seed - 1, duplicates))  # warm-up, untimed
            probes, commits, found = [], [], []
            for number, names in enumerate(inputs):
                start = time.perf_counter()
                result = store.find_duplicates(WAREHOUSE, TABLE, names)
                probes.append(time.perf_counter() - start)
                new = pl.DataFrame([names, result.hashes]).filter(~result.staged)
                start = time.perf_counter()
                with store._transaction():
                    store.store_keys(TABLE, WAREHOUSE, "bench", number, new)
                commits.append(time.perf_counter() - start)
                found.append(int(result.staged.sum()))
    peak = peak_rss_bytes() / 2**20
    return {"probes": probes, "commits": commits, "found": found, "rss_before_mb": rss_before, "peak_rss_mb": peak}


def run_worker(keys: int, args: argparse.Namespace) -> dict:
    """`worker` in a fresh process."""
    command = [sys.executable, __file__, "--worker", "--keys", str(keys), "--batches", str(args.batches)]
    command += ["--seed", str(args.seed), "--duplicates", str(args.duplicates)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5, help="batches per process")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duplicates", type=float, default=0.01, help="fraction of each batch already stored")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.keys[0], args.batches, args.seed, args.duplicates)))
        return
    for keys in args.keys:
        key_store(keys)
    results: dict[int, list[dict]] = {keys: [] for keys in args.keys}
    for _ in range(args.rounds):
        for keys in args.keys:
            results[keys].append(run_worker(keys, args))
    print(f"{'stored keys':>12} {'probe ms/50k':>13} {'commit ms/50k':>14} {'RSS before':>11} {'peak RSS':>9}", end="")
    print(f" {'hits':>6}")
    for keys, runs in results.items():
        probe = statistics.median(t * 1000 for r in runs for t in r["probes"])
        commit = statistics.median(t * 1000 for r in runs for t in r["commits"])
        before = statistics.median(r["rss_before_mb"] for r in runs)
        print(
            f"{keys:>12,} {probe:>13.1f} {commit:>14.1f} {before:>8.0f} MB "
            f"{max(r['peak_rss_mb'] for r in runs):>6.0f} MB {runs[0]['found'][0]:>6}"
        )


if __name__ == "__main__":
    main()
