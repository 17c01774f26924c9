"""What holds bqhold's fixed footprint: RSS after each import, then through a run to its first batch.

    python bench/footprint.py                          # the bundled sample into a temporary DuckDB
    python bench/footprint.py --input big.jsonl --key event_id

In a fresh interpreter it imports, one at a time, what the local command loads (with the RSS and
time each adds), then what a BigQuery run would add; then, in another, it runs `flows/run.py`'s
command and notes the RSS and the time since that process started when the flow's body begins
(the flow engine and its client are up), when HOLD₂ is open, and when the first batch is about
to start (the summary's first_batch_rss_mb; its first_batch_s is the command's own, whose server
starts while it imports, where here it starts first).
"""

from __future__ import annotations

import argparse
import importlib
import runpy
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PROCESS = psutil.Process()
# In the order the local command first loads them; bqhold.flows first, as the command does
# (it sets the allocator before polars loads).
IMPORTS = (
    "bqhold.flows",
    "numpy",
    "pyarrow",
    "polars",
    "duckdb",
    "pydantic",
    "prefect",
    "bqhold.tasks.storage.batch_run",
    "bqhold.flows._runner",
    "bqhold.flows.generic",
)
BIGQUERY_IMPORTS = ("google.cloud.bigquery", "google.cloud.storage")


def rss_mb() -> float:
    """This process's RSS now, in MB."""
    return PROCESS.memory_info().rss / 2**20


def since_start() -> float:
    """Seconds since this process started."""
    return time.time() - PROCESS.create_time()


def note(what: str, before: float | None = None, took: float | None = None) -> float:
    """Print the RSS now (and what it added since `before`); return it."""
    now = rss_mb()
    added = f"+{now - before:6.1f} MB" if before is not None else " " * 9
    timing = f"{took:6.2f}s" if took is not None else f"at {since_start():5.2f}s"
    print(f"  {what:42}{now:7.1f} MB  {added}  {timing}", flush=True)
    return now


def imports(names: tuple[str, ...], before: float) -> float:
    """Import `names` one after the other, noting each one's RSS and time."""
    for name in names:
        started = time.perf_counter()
        importlib.import_module(name)
        before = note(f"import {name}", before, time.perf_counter() - started)
    return before


def wrap(owner: object, name: str, label: str, after: bool = False) -> None:
    """Note the RSS when `owner.name` is first called (or, with `after`, when its first call returns)."""
    original, seen = getattr(owner, name), []

    def noted(*args, **kwargs):
        if not seen and not after:
            seen.append(note(label))
        result = original(*args, **kwargs)
        if not seen and after:
            seen.append(note(label))
        return result

    setattr(owner, name, noted)


def run_to_first_batch(input_path: str, key: str) -> None:
    """Run flows/run.py's command in this process, noting the RSS at the flow's start, with HOLD₂
    open and before the first batch. Its temporary Prefect server is started first (as the
    command would), so that Prefect, imported after it, reads its address."""
    command = runpy.run_path(str(ROOT / "flows" / "run.py"), run_name="bqhold_footprint")  # imports no Prefect
    command["_prepare_prefect"]()
    with command["LocalPrefectServer"]() as server:
        server.wait_ready()
        from bqhold.flows import _runner
        from bqhold.tasks.storage.hold_store import HoldStore

        wrap(_runner._Run, "execute", "the flow's body begins (engine up)")
        wrap(HoldStore, "__enter__", "HOLD₂ open", after=True)
        wrap(_runner, "staged_batches", "just before the first batch")
        work = Path(tempfile.mkdtemp(prefix="bqhold-footprint-"))
        argv = ["--input", input_path, "--key", key, "--no-progress", "--hold-dir", str(work / "hold")]
        command["run"]([*argv, "--warehouse", f"duckdb://{work / 'warehouse.duckdb'}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=str(ROOT / "flows" / "sample" / "events.jsonl"))
    parser.add_argument("--key", default="event_id")
    parser.add_argument("--imports", action="store_true", help="only the imports (run in a fresh interpreter)")
    args = parser.parse_args()
    if args.imports:
        print("RSS in a fresh interpreter, then after each import:")
        before = imports(IMPORTS, note("interpreter"))
        print("what a BigQuery warehouse adds (imported only then):")
        imports(BIGQUERY_IMPORTS, before)
        return
    subprocess.run([sys.executable, __file__, "--imports"], check=True)
    print("a run of flows/run.py's command in another (its Prefect server is a child process, ready first):")
    note("interpreter")
    run_to_first_batch(args.input, args.key)


if __name__ == "__main__":
    main()
