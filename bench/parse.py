"""The fast parse against the exact one, interleaved in the same minutes, on the bench events.

    python bench/parse.py --rows 1000000 --runs 3     # issue 11, items 2 and 3
    python bench/parse.py --rows 200000 --runs 1      # a quick look

For each dataset (bench/events.py's events, and the same with a 200-character `text` field):

1. the read stage alone, per 50k-row batch: every batch of the file read with `--parser exact`
   and with `--parser fast` (the schema learnt from the batch before), the two in turn, in one
   process; the first batch (always exact) is left out. Median milliseconds per batch.
2. the whole `python flows/run.py --input FILE --key event_id` (Prefect included, one local
   Prefect server started here for all runs), fast and exact in turn, `--runs` times: medians of
   the staging rate (rows / `stage_s`), the wall time and the peak RSS of the process.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bound import DATASETS, CountedPrefectServer  # noqa: E402
from bench.run_bench import events_file, measure_file  # noqa: E402

BATCH_SIZE = 50_000
PARSERS = ("exact", "fast")


def read_times(source: Path) -> dict[str, list[float]]:
    """Seconds per batch of the read stage (first batch left out), exact and fast in turn."""
    from bqhold.tasks.core.inputs import resolve_inputs
    from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES, read_batch
    from bqhold.tasks.core.readers.fast_json import next_learnt
    from bqhold.tasks.core.records import EXACT_PARSE, ParseChoice, Position

    [item] = resolve_inputs(str(source))
    times: dict[str, list[float]] = {parser: [] for parser in PARSERS}
    position, learnt, first = Position(), None, True
    while True:
        order = PARSERS if len(times["fast"]) % 2 == 0 else PARSERS[::-1]
        for parser in order:
            parse = ParseChoice(True, learnt) if parser == "fast" else EXACT_PARSE
            started = time.perf_counter()
            raw = read_batch(item, position, BATCH_SIZE, DEFAULT_MAX_RECORD_BYTES, frozenset(), parse)
            if not first:
                times[parser].append(time.perf_counter() - started)
                if parser == "fast" and not raw.fast:
                    raise SystemExit(f"{source}: a batch at line {position.line:,} did not go fast")
        learnt, first = next_learnt(learnt, raw.schema), False
        if raw.exhausted:
            return times
        position = raw.end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    sources = {name: events_file(args.rows, text) for name, text in DATASETS.items()}
    for name, source in sources.items():
        times = read_times(source)
        exact, fast = (statistics.median(times[p]) * 1000 for p in PARSERS)
        print(
            f"{name}: read stage per 50k batch, median of {len(times['fast'])}: exact {exact:.0f} ms, "
            f"fast {fast:.0f} ms ({exact / fast:.2f}x)",
            flush=True,
        )
    runs: dict[tuple[str, str], list] = {}
    with tempfile.TemporaryDirectory(prefix="bqhold-parse-bench-") as work, CountedPrefectServer(Path(work)) as server:
        env = {**os.environ, "PREFECT_API_URL": server.url}
        for round_ in range(args.runs):
            for name, source in sources.items():
                for choice in PARSERS if round_ % 2 == 0 else PARSERS[::-1]:
                    measured = measure_file(source, BATCH_SIZE, ["--parser", choice], env)
                    runs.setdefault((name, choice), []).append(measured)
                    print(
                        f"  round {round_ + 1} {name} {choice}: stage {measured.summary['stage_s']:.2f}s "
                        f"({measured.stage_rate:,.0f} rows/s), wall {measured.wall_s:.2f}s, "
                        f"peak RSS {measured.peak_rss_mb:.0f} MB",
                        flush=True,
                    )
    print(f"\nwhole CLI, {args.rows:,} rows, --key event_id: medians of {args.runs} interleaved runs")
    for name in sources:
        for choice in PARSERS:
            measured = runs[(name, choice)]
            rate = statistics.median(m.stage_rate for m in measured)
            wall = statistics.median(m.wall_s for m in measured)
            peak = statistics.median(m.peak_rss_mb for m in measured)
            print(f"{name:16s} {choice:5s}  staging {rate:>9,.0f} rows/s  wall {wall:6.2f}s  peak RSS {peak:4.0f} MB")


if __name__ == "__main__":
    main()
