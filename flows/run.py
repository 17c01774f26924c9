"""bqhold's local command: run a pipeline's flow on this machine and print its summary.

    python flows/run.py                                  # the bundled sample -> embedded DuckDB
    python flows/run.py --input data/*.jsonl --key id --table orders
    python flows/run.py --input big.jsonl --warehouse bigquery://my-project/analytics

Exit codes: 0 delivered and verified · 1 failed, re-run to resume · 2 unusable input or usage ·
3 loaded but not verified (HOLD₂ kept) · 130/143 interrupted after a checkpoint.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

# `python flows/run.py` puts flows/ on sys.path; the project root is what imports need.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flows._local_server import LocalPrefectServer  # noqa: E402
from tasks.core.errors import BqholdError, ConfigError, ExitCode, exit_code_for, without_tracebacks  # noqa: E402
from tasks.core.inputs import InputFormat, resolve_inputs  # noqa: E402
from tasks.core.readers import validate_readable  # noqa: E402
from tasks.core.options import (  # noqa: E402
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOLD_DIR,
    DEFAULT_WAREHOUSE,
    JobOptions,
    default_table,
    validate,
)
from tasks.core.warehouse_url import parse_warehouse  # noqa: E402

SAMPLE_INPUT = ROOT / "flows" / "sample" / "events.jsonl"
SAMPLE_KEY = "event_id"

# A local run needs none of the server's background services; they only cost start-up time.
_LOCAL_PREFECT_DEFAULTS = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_UI_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_LATE_RUNS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_FOREMAN_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CANCELLATION_CLEANUP_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_REPOSSESSOR_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED": "false",
    "PREFECT_LOGGING_EXTRA_LOGGERS": "bqhold",
}


def build_parser() -> argparse.ArgumentParser:
    """The command's options (DESIGN.md's contract; others may be added)."""
    parser = argparse.ArgumentParser(
        prog="python flows/run.py",
        description="Stage HOLD₁ into HOLD₂, deliver it exactly once to the warehouse, verify it.",
        epilog="Exit codes: 0 delivered · 1 failed, re-run to resume · 2 unusable input or usage · "
        "3 not verified (HOLD₂ kept) · 130/143 interrupted.",
    )
    add = parser.add_argument
    add("--input", help=f"HOLD₁ file or glob (.jsonl/.ndjson, .csv, .parquet); default: the bundled sample ({SAMPLE_INPUT.name})")
    add("--pipeline", default="generic", help="pipeline (a module in flows/): generic (default), web_events, ...")
    add("--key", help="dedupe key field (dotted for nested: user.id); default: the pipeline's, or event_id for the sample")
    add("--hold-dir", default=DEFAULT_HOLD_DIR, help=f"where HOLD₂, checkpoints and quarantine live (default {DEFAULT_HOLD_DIR})")
    add("--warehouse", default=DEFAULT_WAREHOUSE, help=f"duckdb:///path.duckdb or bigquery://PROJECT/DATASET (default {DEFAULT_WAREHOUSE})")
    add("--table", help="destination table (default: from the input's file name)")
    add("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help=f"rows per batch, an upper bound (default {DEFAULT_BATCH_SIZE:,})")
    add("--memory-threshold", type=float, default=80.0, help="memory guard warning level, percent (critical: 10 points higher)")
    add("--memory-limit-mb", type=int, help="memory budget in MB (default: the container's limit, else the machine's)")
    add("--max-retries", type=int, default=3, help="attempts for transient errors (default 3)")
    add("--max-error-rate", type=float, default=0.05, help="stop when more than this share of a batch is bad (default 0.05)")
    add("--run-id", help="name the run; re-running an unfinished run resumes it")
    add("--fresh", action="store_true", help="start a new run even if an unfinished one exists (old HOLD₂ is kept)")
    add("--summary-json", help="also write the run summary as JSON to this path")
    add("--no-progress", action="store_true", help="no progress bar (for CI and logs)")
    return parser


def options_from(args: argparse.Namespace) -> JobOptions:
    """Validated JobOptions from parsed arguments; ConfigError/InputError if unusable."""
    input_spec = args.input or str(SAMPLE_INPUT)
    key = args.key if args.key is not None else (SAMPLE_KEY if args.input is None else None)
    options = JobOptions(
        input=input_spec,
        table=args.table or default_table(input_spec),
        key=key,
        hold_dir=Path(args.hold_dir),
        warehouse=args.warehouse,
        batch_size=args.batch_size,
        run_id=args.run_id,
        fresh=args.fresh,
        memory_limit_mb=args.memory_limit_mb,
        memory_threshold=args.memory_threshold,
        max_retries=args.max_retries,
        max_error_rate=args.max_error_rate,
        summary_json=args.summary_json,
    )
    parse_warehouse(options.warehouse)
    return validate(options)


def load_flow(pipeline: str):
    """The flow of `flows/<pipeline>.py`, or a ConfigError listing the pipelines there are."""
    available = sorted(p.stem for p in (ROOT / "flows").glob("*.py") if not p.stem.startswith("_") and p.stem != "run")
    if pipeline not in available:
        raise ConfigError(f"unknown pipeline {pipeline!r}; available: {', '.join(available)}")
    from prefect import Flow

    module = importlib.import_module(f"flows.{pipeline}")
    flows = [value for value in vars(module).values() if isinstance(value, Flow)]
    if len(flows) != 1:
        raise ConfigError(f"flows/{pipeline}.py must define exactly one flow (pipeline_flow(PIPELINE))")
    return flows[0]


def _flow_parameters(options: JobOptions, summary_path: str) -> dict:
    return {
        "input": options.input,
        "table": options.table,
        "key": options.key,
        "hold_dir": str(options.hold_dir),
        "warehouse": options.warehouse,
        "batch_size": options.batch_size,
        "run_id": options.run_id,
        "fresh": options.fresh,
        "memory_limit_mb": options.memory_limit_mb,
        "memory_threshold": options.memory_threshold,
        "max_retries": options.max_retries,
        "max_error_rate": options.max_error_rate,
        "summary_json": summary_path,
    }


def fail(message: str, code: int) -> int:
    """Print one error line (no traceback) and return the exit code."""
    print(f"bqhold: {message}", file=sys.stderr)
    return code


def run(argv: list[str]) -> int:
    """Parse, check, run the flow, print the summary; return the exit code."""
    args = build_parser().parse_args(argv)
    try:
        options = options_from(args)
        inputs = resolve_inputs(options.input)  # fail fast, before Prefect starts
        for item in inputs:
            validate_readable(item)
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    for name, value in _LOCAL_PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)
    with LocalPrefectServer() as server:
        return _run_flow(args, options, inputs, server)


def _run_flow(args: argparse.Namespace, options: JobOptions, inputs, server: LocalPrefectServer) -> int:
    from flows._console import CheckpointProgress, quiet_expected_errors

    try:
        job_flow = load_flow(args.pipeline)
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    quiet_expected_errors()
    # Per-task "Finished in state Completed()" lines drown the few that matter locally.
    logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
    server.wait_ready()
    summary_path = options.summary_json or str(Path(tempfile.mkdtemp(prefix="bqhold-")) / "summary.json")
    text_input = all(item.format is not InputFormat.PARQUET for item in inputs)
    sizes = [item.size for item in inputs] if text_input else None
    try:
        if args.no_progress or not sys.stderr.isatty():
            state = job_flow(**_flow_parameters(options, summary_path), return_state=True)
        else:
            with CheckpointProgress(options.hold_dir, sizes):
                state = job_flow(**_flow_parameters(options, summary_path), return_state=True)
    except KeyboardInterrupt:
        return fail("interrupted; HOLD₂ is consistent — re-run the same command to resume", ExitCode.SIGINT)
    summary = _read_summary(summary_path)
    if summary is not None:
        print(_render(summary))
    if state.is_completed():
        return ExitCode.DELIVERED
    error = state.result(raise_on_failure=False)
    if isinstance(error, BaseException):
        without_tracebacks(error)  # already logged; frees the frames (and DuckDB handles) they pin
        code = exit_code_for(error)
        message = str(error) if isinstance(error, BqholdError) else f"{type(error).__name__}: {error}"
        hint = " — re-run the same command to resume" if code == ExitCode.RESUMABLE else ""
        return fail(f"{message}{hint}", code)
    return fail(f"the flow run ended {state.type.value}: {state.message}", ExitCode.RESUMABLE)


def _read_summary(path: str) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def _render(summary: dict) -> str:
    from tasks.core.summary import RunSummary

    return RunSummary(**summary).render()


def main() -> None:
    """Entry point."""
    sys.exit(run(sys.argv[1:]))


if __name__ == "__main__":
    main()
