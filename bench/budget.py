"""bqhold under a memory budget: staging rate, peak RSS and fixed cost at `--memory-limit-mb` N.

    python bench/budget.py --rows 1000000 --limits 0 600 400 --runs 3          # issue 11's "tight budget"
    python bench/budget.py --before ../base-checkout                            # … before/after, interleaved
    python bench/budget.py --env arena:MALLOC_ARENA_MAX=2 --limits 0           # an allocator setting side by side
    python bench/budget.py --sample-only --runs 5                               # the newcomer's run on the sample
    python bench/budget.py --env decay:_RJEM_MALLOC_CONF= --limits 0 400       # polars' jemalloc at its defaults

Each round runs every variant (this checkout; `--before`'s checkout; this checkout with each
`--env` setting) at every limit (0 = none), one after the other, on bench/events.py's events with
`--key event_id` and 50,000-row batches, each with its own temporary Prefect server as a user's
run has. It prints per variant and limit the medians over rounds of: staging rate (and its share
of the same variant's unconstrained rate), peak RSS, time to the first batch and RSS just before
it, batches and the final batch size; with `--sample`, the wall time of `python flows/run.py` on
the bundled sample (fresh HOLD₂ each time).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.run_bench import Measurement, events_file, measure_file, run_sampled  # noqa: E402

BATCH_SIZE = 50_000
_PACKAGES = ("flows", "tasks", "blocks")  # installed as bqhold.<folder> (setup.py)


@dataclass(frozen=True)
class Variant:
    """What runs: a checkout's code, with extra environment variables."""

    label: str
    checkout: Path = ROOT
    env: dict[str, str] = field(default_factory=dict)

    def environment(self, packages: Path) -> dict[str, str]:
        """The run's environment: the checkout's package first on the path (the editable install
        may point at another checkout), then the variant's own settings."""
        env = {**os.environ, **self.env}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(packages), env.get("PYTHONPATH", "")]))
        return env


def package_dir(checkout: Path) -> Path:
    """A directory holding `bqhold/` whose folders are `checkout`'s, so `import bqhold.flows` finds them."""
    root = Path(tempfile.mkdtemp(prefix="bqhold-bench-code-"))
    (root / "bqhold").mkdir()
    for folder in _PACKAGES:
        (root / "bqhold" / folder).symlink_to(checkout.resolve() / folder)
    return root


def parse_env(text: str) -> Variant:
    """`label:VAR=value[,VAR=value]` as a variant of this checkout."""
    label, _, settings = text.partition(":")
    return Variant(label, env=dict(pair.split("=", 1) for pair in settings.split(",") if pair))


def run_limited(variant: Variant, packages: Path, source: Path, limit_mb: int) -> Measurement:
    """One run of `variant` on `source` at `limit_mb` (0: no explicit limit)."""
    extra = ["--memory-limit-mb", str(limit_mb)] if limit_mb else []
    return measure_file(source, BATCH_SIZE, extra, variant.environment(packages), variant.checkout)


def sample_wall(variant: Variant, packages: Path) -> float:
    """Wall seconds of `python flows/run.py` on the bundled sample, with a fresh HOLD₂ and warehouse."""
    work = Path(tempfile.mkdtemp(prefix="bqhold-bench-sample-"))
    command = [sys.executable, str(variant.checkout / "flows" / "run.py"), "--no-progress"]
    command += ["--hold-dir", str(work / "hold"), "--warehouse", f"duckdb://{work / 'warehouse.duckdb'}"]
    run = run_sampled(command, variant.environment(packages))
    if run.returncode != 0:
        raise SystemExit(f"the sample run failed ({run.returncode}):\n{run.stderr[-3000:]}")
    return run.wall_s


def summary_line(label: str, limit_mb: int, runs: list[Measurement], unconstrained: float | None) -> str:
    """Medians of one variant at one limit."""

    def med(values: list[float]) -> float:
        return statistics.median(values)

    rate = med([m.stage_rate for m in runs])
    share = f"{rate / unconstrained:6.2f}" if unconstrained else f"{'':6}"
    s = [m.summary for m in runs]
    return (
        f"{label:10}{limit_mb or '-':>7}{rate:>10,.0f}{share}{med([m.summary['stage_s'] for m in runs]):>9.1f}"
        f"{med([m.peak_rss_mb for m in runs]):>9.0f}{med([x['first_batch_s'] for x in s]):>9.2f}"
        f"{med([x['first_batch_rss_mb'] for x in s]):>9.0f}{med([x['batches'] for x in s]):>9.0f}"
        f"{med([x['final_batch_size'] for x in s]):>10,.0f}   {[round(m.stage_rate) for m in runs]}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--limits", type=int, nargs="+", default=[0, 600, 400], help="--memory-limit-mb; 0 = none")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a checkout of the code before the change, run as 'before'")
    parser.add_argument("--env", action="append", default=[], help="label:VAR=value[,VAR=value], repeatable")
    parser.add_argument("--sample", action="store_true", help="also time the newcomer's run on the sample")
    parser.add_argument("--sample-only", action="store_true", help="only the newcomer's run on the sample")
    args = parser.parse_args()
    variants = [Variant("after" if args.before else "this")] + [parse_env(text) for text in args.env]
    if args.before:
        variants.insert(0, Variant("before", args.before.resolve()))
    packages = {v.label: package_dir(v.checkout) for v in variants}
    source = events_file(args.rows)
    results: dict[tuple[str, int], list[Measurement]] = {}
    walls: dict[str, list[float]] = {}
    for number in range(args.runs):
        print(f"round {number + 1}/{args.runs}", file=sys.stderr, flush=True)
        for variant in variants:
            if args.sample or args.sample_only:
                walls.setdefault(variant.label, []).append(sample_wall(variant, packages[variant.label]))
            for limit in [] if args.sample_only else args.limits:
                m = run_limited(variant, packages[variant.label], source, limit)
                results.setdefault((variant.label, limit), []).append(m)
                print(f"  {variant.label:10}{limit or '-':>7}  {m.stage_rate:>9,.0f} rows/s", file=sys.stderr)
    print(f"medians of {args.runs} interleaved round(s), {args.rows:,} rows, batches of {BATCH_SIZE:,}")
    if results:
        print(
            f"{'variant':10}{'limit':>7}{'rows/s':>10}{'×free':>6}{'stage s':>9}{'peak MB':>9}{'1st s':>9}"
            f"{'RSS@1st':>9}{'batches':>9}{'final':>10}   rates"
        )
    for variant in variants:
        free_runs = results.get((variant.label, 0))
        free = statistics.median(m.stage_rate for m in free_runs) if free_runs else None
        for limit in [] if args.sample_only else args.limits:
            print(summary_line(variant.label, limit, results[variant.label, limit], free if limit else None))
    for label, values in walls.items():
        rounded = [round(v, 2) for v in values]
        print(f"python flows/run.py on the sample, {label}: median wall {statistics.median(values):.2f}s {rounded}")


if __name__ == "__main__":
    main()
