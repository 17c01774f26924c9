"""Benchmark HOLD₂'s dedupe probe: time per 50k-key batch and peak RSS, against 1M and 5M stored keys.

    python bench/probe.py                          # 1M and 5M keys, 3 interleaved rounds of 5 batches
    python bench/probe.py --keys 1000000 --rounds 5
    python bench/probe.py --duplicates 1                  # a file sent again: every key a hit

Compares today's probe (the release before: one join on hash, scope and the exact key) with the
current `HoldStore.find_duplicates` (join on hash and scope only, then the stored keys of the few
hits fetched by rowid and compared exactly), and checks they find the same. Each (variant, size)
runs in its own process, so each peak RSS is that variant's own; the processes alternate in the
same minutes (ABBA per round) so a busy neighbour slows both alike. Each batch holds 1% keys
already stored (--duplicates), the rest new, like bench/events.py's duplicates. Each process probes once untimed
first (its first query pays DuckDB's setup, ~0.5 s); "RSS before" is the process with HOLD₂ open
and its batches made, before any probe. Key stores are made once in bench/out/ (~14 MB per 1M keys).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
TABLE, WAREHOUSE = "events", "duckdb:///bench.duckdb"
BATCH_KEYS = 50_000
KEYS_PER_RUN = 1_000_000  # stored keys are spread over runs of 20 batches of 50k, as staging leaves them
VARIANTS = ("today", "new")


def key_store(keys: int) -> Path:
    """A hold dir whose dedupe_keys holds `keys` keys, generated once."""
    from bqhold.tasks.core.layout import HoldLayout
    from bqhold.tasks.storage.hold_store import HoldStore

    root = OUT / f"probe-keys-{keys}"
    done = root / "ready"
    if not done.exists():
        print(f"storing {keys:,} keys into {root} ...", file=sys.stderr)
        with HoldStore(HoldLayout(root), memory_limit_mb=512) as store:
            store._con.execute("DELETE FROM dedupe_keys")
            store._con.execute(
                "INSERT INTO dedupe_keys (table_name, key_hash, key, run_id, batch, warehouse) "
                "SELECT $table, md5_number_lower(k), k, 'run-' || (i // $per_run), "
                "((i % $per_run) // $batch)::INTEGER, $warehouse "
                "FROM (SELECT 'evt_' || lpad(i::VARCHAR, 9, '0') AS k, i FROM range($keys) t(i))",
                {"table": TABLE, "warehouse": WAREHOUSE, "keys": keys, "per_run": KEYS_PER_RUN, "batch": BATCH_KEYS},
            )
            store._con.execute("CHECKPOINT")
        done.touch()
    return root


def batch_keys(stored: int, seed: int, duplicates: float) -> pl.Series:
    """50k keys, the fraction `duplicates` of them already stored."""
    rng = random.Random(seed)
    fresh = stored + seed * BATCH_KEYS  # beyond every stored key
    return pl.Series(
        [f"evt_{rng.randrange(stored) if rng.random() < duplicates else fresh + i:09d}" for i in range(BATCH_KEYS)]
    )


def todays_probe(store, keys: pl.Series, ignoring: tuple[str, int] = ("", -1)):
    """The probe as released before: one join on hash, scope and the exact key (kept to compare)."""
    from bqhold.tasks.core.staging import KeyProbe

    con = store._con
    con.register("bqhold_keys", pl.DataFrame({"key": keys}).to_arrow())
    hashes = pl.from_arrow(con.sql("SELECT md5_number_lower(key) AS key_hash FROM bqhold_keys").to_arrow_table())
    con.unregister("bqhold_keys")
    hashes = hashes["key_hash"]
    batch = pl.DataFrame(
        {"row_nr": pl.int_range(keys.len(), eager=True, dtype=pl.UInt32), "key": keys, "key_hash": hashes}
    )
    con.register("bqhold_batch_keys", batch.to_arrow())
    found = con.sql(
        """
        SELECT b.row_nr, k.run_id FROM bqhold_batch_keys b
        JOIN dedupe_keys k ON k.key_hash = b.key_hash AND k.table_name = $table AND k.warehouse = $warehouse
        WHERE k.key = b.key AND NOT (k.run_id = $run AND k.batch = $batch)
        """,
        params={"table": TABLE, "warehouse": WAREHOUSE, "run": ignoring[0], "batch": ignoring[1]},
    ).to_arrow_table()
    con.unregister("bqhold_batch_keys")
    hits = pl.from_arrow(found)
    return KeyProbe(batch["row_nr"].is_in(hits["row_nr"].implode()), hashes, frozenset(hits["run_id"].unique()))


def worker(variant: str, keys: int, batches: int, seed: int, duplicates: float) -> dict:
    """Probe `batches` batches with one variant in this process; times, peak RSS and what was found."""
    from bqhold.tasks.core.layout import HoldLayout
    from bqhold.tasks.storage.hold_store import HoldStore

    with HoldStore(HoldLayout(key_store(keys))) as store:  # the product's own cache cap (64 MB)
        probe = (
            (lambda k: todays_probe(store, k))
            if variant == "today"
            else (lambda k: store.find_duplicates(WAREHOUSE, TABLE, k))
        )
        inputs = [batch_keys(keys, seed + n, duplicates) for n in range(batches)]
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        probe(batch_keys(keys, seed - 1, duplicates))  # warm-up, untimed: the first query of a process pays its setup
        times, found = [], []
        for k in inputs:
            start = time.perf_counter()
            result = probe(k)
            times.append(time.perf_counter() - start)
            found.append([int(result.staged.sum()), sorted(result.owners), int((result.hashes % 1_000_003).sum())])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"times": times, "found": found, "rss_before_mb": rss_before, "peak_rss_mb": peak}


def run_worker(variant: str, keys: int, args: argparse.Namespace) -> dict:
    """`worker` in a fresh process."""
    command = [sys.executable, __file__, "--worker", variant, "--keys", str(keys), "--batches", str(args.batches)]
    command += ["--seed", str(args.seed), "--duplicates", str(args.duplicates)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batches", type=int, default=5, help="probes per process")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--duplicates", type=float, default=0.01, help="fraction of each batch already stored")
    parser.add_argument("--worker", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.keys[0], args.batches, args.seed, args.duplicates)))
        return
    for keys in args.keys:
        key_store(keys)
    results: dict[tuple[str, int], list[dict]] = {(v, k): [] for v in VARIANTS for k in args.keys}
    for round_nr in range(args.rounds):
        order = VARIANTS if round_nr % 2 == 0 else VARIANTS[::-1]
        for keys in args.keys:
            for variant in order:
                results[variant, keys].append(run_worker(variant, keys, args))
    header = f"{'stored keys':>12} {'variant':>8} {'median ms/50k':>14} {'min':>7} {'max':>7}"
    print(f"{header} {'RSS before':>11} {'peak RSS':>9}")
    for keys in args.keys:
        today, new = results["today", keys], results["new", keys]
        assert [r["found"] for r in today] == [r["found"] for r in new], "the two probes disagree"
        for variant, runs in (("today", today), ("new", new)):
            times = [t * 1000 for r in runs for t in r["times"]]
            print(
                f"{keys:>12,} {variant:>8} {statistics.median(times):>14.1f} {min(times):>7.1f} {max(times):>7.1f} "
                f"{statistics.median(r['rss_before_mb'] for r in runs):>8.0f} MB "
                f"{max(r['peak_rss_mb'] for r in runs):>6.0f} MB"
            )
        speedup = statistics.median(t for r in today for t in r["times"]) / statistics.median(
            t for r in new for t in r["times"]
        )
        print(f"{'':>12} {'':>8} today/new = {speedup:.2f}x; duplicates found per batch: {today[0]['found'][0][0]}")


if __name__ == "__main__":
    main()
