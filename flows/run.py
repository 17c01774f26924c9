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
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bqhold.flows._local_server import LocalPrefectServer
from bqhold.tasks.core.errors import BqholdError, ConfigError, ExitCode, exit_code_for, without_tracebacks
from bqhold.tasks.core.inputs import resolve_inputs
from bqhold.tasks.core.options import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_HOLD_DIR,
    DEFAULT_JOB_TIMEOUT_S,
    DEFAULT_WAREHOUSE,
    JobOptions,
    default_table,
    parse_string_columns,
    validate,
)
from bqhold.tasks.core.paths import warehouse_file, writable_directory
from bqhold.tasks.core.readers import DEFAULT_MAX_RECORD_BYTES, validate_readable
from bqhold.tasks.core.summary import NO_RUN, RunSummary
from bqhold.tasks.core.warehouse_url import parse_warehouse

if TYPE_CHECKING:
    from prefect import Flow

ROOT = Path(__file__).resolve().parent.parent
SAMPLE_INPUT = ROOT / "flows" / "sample" / "events.jsonl"
SAMPLE_KEY = "event_id"
STAGING_BUCKET_HELP = (
    "load through Cloud Storage: gs://BUCKET[/FOLDER], or the name of a prefect-gcp GcsBucket block"
    " (default: upload from this machine)"
)

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
    add(
        "--input",
        help=f"HOLD₁ file or glob (.jsonl/.ndjson, .csv, .parquet); default: the bundled sample ({SAMPLE_INPUT.name})",
    )
    add("--pipeline", default="generic", help="pipeline (a module in flows/): generic (default), web_events, ...")
    add(
        "--key",
        help="dedupe key field (dotted for nested: user.id); default: the pipeline's, or event_id for the sample",
    )
    add(
        "--hold-dir",
        default=DEFAULT_HOLD_DIR,
        help=f"where HOLD₂, checkpoints and quarantine live (default {DEFAULT_HOLD_DIR})",
    )
    add(
        "--warehouse",
        default=DEFAULT_WAREHOUSE,
        help=f"duckdb:///path.duckdb or bigquery://PROJECT/DATASET (default {DEFAULT_WAREHOUSE})",
    )
    add("--table", help="destination table (default: from the input's file name)")
    add(
        "--batch-size",
        type=int,
        default=DEFAULT_BATCH_SIZE,
        help=f"rows per batch, an upper bound (default {DEFAULT_BATCH_SIZE:,})",
    )
    add(
        "--memory-threshold",
        type=float,
        default=80.0,
        help="memory guard warning level, percent (critical: 10 points higher)",
    )
    add("--memory-limit-mb", type=int, help="memory budget in MB (default: the container's limit, else the machine's)")
    add("--max-retries", type=int, default=3, help="attempts for transient errors (default 3)")
    add(
        "--max-error-rate",
        type=float,
        default=0.05,
        help="stop when more than this share of a batch is bad (default 0.05)",
    )
    add(
        "--max-record-bytes",
        type=int,
        default=DEFAULT_MAX_RECORD_BYTES,
        help="a record larger than this is quarantined whole, never read into memory "
        f"(default {DEFAULT_MAX_RECORD_BYTES:,}: BigQuery's largest JSON row)",
    )
    add(
        "--string-columns",
        metavar="FIELD,...",
        help="stage these fields as text whatever their values (widens a typed column to STRING)",
    )
    add("--run-id", help="name the run; re-running an unfinished run resumes it")
    add("--fresh", action="store_true", help="start a new run even if an unfinished one exists (old HOLD₂ is kept)")
    add("--summary-json", help="also write the run summary as JSON to this path")
    add("--no-progress", action="store_true", help="no progress bar (for CI and logs)")
    bigquery = parser.add_argument_group("BigQuery")
    bigquery.add_argument(
        "--bigquery-target", help="name of a BigQueryTarget block (project, dataset, table, credentials)"
    )
    bigquery.add_argument("--gcp-credentials-block", help="name of a prefect-gcp GcpCredentials block (default: ADC)")
    bigquery.add_argument("--location", help="the dataset's location, e.g. EU")
    bigquery.add_argument(
        "--schema-update",
        choices=("add", "refuse"),
        default="add",
        help="a column new to the table, or an INT64 one widening to FLOAT64: do it (default) or refuse",
    )
    bigquery.add_argument("--staging-bucket", help=STAGING_BUCKET_HELP)
    bigquery.add_argument(
        "--job-timeout-s",
        type=float,
        default=DEFAULT_JOB_TIMEOUT_S,
        help=f"cancel a load job still running after this many seconds (default {DEFAULT_JOB_TIMEOUT_S:g})",
    )
    parser.add_argument("--staging-area", help="name of a StagingArea block (hold dir, batch size, memory budget)")
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
        max_record_bytes=args.max_record_bytes,
        summary_json=args.summary_json,
        schema_update=args.schema_update,
        staging_bucket=args.staging_bucket,
        string_columns=parse_string_columns(args.string_columns),
        job_timeout_s=args.job_timeout_s,
    )
    parse_warehouse(options.warehouse)
    return validate(options)


def check_destinations(options: JobOptions, *, from_blocks: bool, bigquery_block: bool) -> None:
    """Fail fast (before Prefect starts) on a place the run could never write: the hold dir, the
    DuckDB warehouse file (unless blocks name them), and a stale --summary-json of an earlier run."""
    if not from_blocks:
        writable_directory(options.hold_dir, "--hold-dir")
    target = parse_warehouse(options.warehouse)
    if target.kind == "duckdb" and not bigquery_block:
        warehouse_file(target.path)
    if options.summary_json:  # if this run cannot write its own, no earlier run's may stand in for it
        try:
            Path(options.summary_json).unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(f"--summary-json {options.summary_json} cannot be replaced ({exc.strerror})") from exc


def load_flow(pipeline: str) -> Flow:
    """The flow of `flows/<pipeline>.py`, or a ConfigError listing the pipelines there are."""
    from bqhold.flows._pipelines import find_pipeline

    return find_pipeline(pipeline).load_flow()


# Options passed to the flow unchanged: the flow's parameters have the same names.
_PASSED_THROUGH = (
    "table",
    "hold_dir",
    "warehouse",
    "batch_size",
    "run_id",
    "fresh",
    "memory_limit_mb",
    "memory_threshold",
    "max_retries",
    "max_error_rate",
    "max_record_bytes",
    "bigquery_target",
    "staging_area",
    "gcp_credentials_block",
    "location",
    "schema_update",
    "staging_bucket",
    "string_columns",
    "job_timeout_s",
)


def _flow_parameters(args: argparse.Namespace, options: JobOptions, summary_path: str) -> dict:
    parameters = {**_picked(args, *_PASSED_THROUGH), "input": options.input, "summary_json": summary_path}
    if options.key is not None:  # else the flow's default: the pipeline's key
        parameters["key"] = options.key
    return parameters


def fail(message: str, code: int) -> int:
    """Print one error line (no traceback) and return the exit code."""
    print(f"bqhold: {message}", file=sys.stderr)
    return code


def prefect_failed(exc: Exception) -> str:
    """One line for an error of Prefect's engine around a flow run, e.g. its API unreachable."""
    cause = (str(exc).strip().splitlines() or [""])[0]
    return (
        f"Prefect could not run the flow ({type(exc).__name__}: {cause}); check that the API at "
        f"{os.environ.get('PREFECT_API_URL')} answers, or unset PREFECT_API_URL to let bqhold start a temporary "
        "server, then re-run the same command to resume"
    )


def _prepare_prefect() -> None:
    for name, value in _LOCAL_PREFECT_DEFAULTS.items():
        os.environ.setdefault(name, value)


def execute(
    load: Callable[[], Flow],
    parameters: dict[str, Any],
    show: Callable[[Any], None],
    progress: Callable[[], AbstractContextManager] | None = None,
) -> int:
    """Run a flow on this machine (starting Prefect's temporary server if needed) and map its
    final state to the command's exit code; `show` prints what the flow returned."""
    _prepare_prefect()
    with LocalPrefectServer() as server:
        from bqhold.flows._logging import quiet_expected_errors

        try:
            job_flow = load()
        except BqholdError as exc:
            return fail(str(exc), exc.exit_code)
        quiet_expected_errors()
        # Per-task "Finished in state Completed()" lines drown the few that matter locally.
        logging.getLogger("prefect.task_runs").setLevel(logging.WARNING)
        try:
            server.wait_ready()
        except BqholdError as exc:
            return fail(str(exc), exc.exit_code)
        for note in server.notes:
            print(f"bqhold: {note}", file=sys.stderr)
        try:
            with progress() if progress else nullcontext():
                state = job_flow(**parameters, return_state=True)
        except KeyboardInterrupt:
            return fail("interrupted; HOLD₂ is consistent — re-run the same command to resume", ExitCode.SIGINT)
        except Exception as exc:  # the engine itself failed (the flow's own errors are in its state)
            return fail(prefect_failed(exc), ExitCode.RESUMABLE)
        result = state.result(raise_on_failure=False)
        show(result)
        if state.is_completed():
            return ExitCode.DELIVERED
        if isinstance(result, BaseException):
            without_tracebacks(result)  # already logged; frees the frames (and DuckDB handles) they pin
            code = exit_code_for(result)
            message = (
                str(result)
                if isinstance(result, BqholdError)
                else f"{type(result).__name__}: {str(result).strip().splitlines()[0]} (the log above has the details)"
            )
            hint = (
                " — re-run the same command to resume" if code == ExitCode.RESUMABLE and "re-run" not in message else ""
            )
            return fail(f"{message}{hint}", code)
        return fail(f"the flow run ended {state.type.value}: {state.message}", ExitCode.RESUMABLE)


def run(argv: list[str]) -> int:
    """The main job: parse, check the input, run the pipeline's flow, print the summary."""
    args = build_parser().parse_args(argv)
    try:
        options = options_from(args)
        inputs = resolve_inputs(options.input)  # fail fast, before Prefect starts
        for item in inputs:
            validate_readable(item)
        check_destinations(options, from_blocks=bool(args.staging_area), bigquery_block=bool(args.bigquery_target))
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    summary_path = options.summary_json or str(Path(tempfile.mkdtemp(prefix="bqhold-")) / "summary.json")

    def progress() -> AbstractContextManager:
        from bqhold.flows._console import CheckpointProgress

        return CheckpointProgress(options.hold_dir, inputs)

    def show(_: Any) -> None:
        summary = _read_summary(summary_path)
        if summary is not None and summary["run_id"] != NO_RUN:  # else nothing ran: the error line says it all
            print(RunSummary(**summary).render())

    showing_progress = not args.no_progress and sys.stderr.isatty()
    return execute(
        lambda: load_flow(args.pipeline),
        _flow_parameters(args, options, summary_path),
        show,
        progress if showing_progress else None,
    )


def _read_summary(path: str) -> dict | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


_TARGET_OPTIONS = ("hold_dir", "warehouse", "bigquery_target", "gcp_credentials_block", "location", "max_retries")


def _picked(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """Parsed options passed to a flow whose parameters have the same names."""
    return {name: getattr(args, name) for name in names}


def _target_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python flows/run.py {prog}", description=description)
    parser.add_argument("--hold-dir", default=DEFAULT_HOLD_DIR, help=f"the hold directory (default {DEFAULT_HOLD_DIR})")
    parser.add_argument("--warehouse", help="warehouse URL (default: the one each run was delivered to)")
    parser.add_argument("--bigquery-target", help="name of a BigQueryTarget block")
    parser.add_argument("--gcp-credentials-block", help="name of a prefect-gcp GcpCredentials block (default: ADC)")
    parser.add_argument("--location", help="the BigQuery dataset's location")
    parser.add_argument("--max-retries", type=int, default=3, help="attempts for transient errors (default 3)")
    return parser


def _show_dict(result: Any) -> None:
    if isinstance(result, dict):
        print(json.dumps(result, indent=2))


def redeliver(argv: list[str]) -> int:
    """`redeliver --run-id ID`: load a HOLD₂ run again where the warehouse lacks it, verify."""
    parser = _target_parser("redeliver", "Load an existing HOLD₂ run into the warehouse again and verify it.")
    parser.add_argument("--run-id", required=True, help="the run to redeliver")
    parser.add_argument("--table", help="destination table (default: the run's)")
    parser.add_argument("--staging-bucket", help=STAGING_BUCKET_HELP)
    args = parser.parse_args(argv)
    if args.warehouse:
        try:
            parse_warehouse(args.warehouse)
        except BqholdError as exc:
            return fail(str(exc), exc.exit_code)
    parameters = _picked(args, "run_id", "table", "staging_bucket", *_TARGET_OPTIONS)
    return execute(lambda: _flow_of("bqhold.flows.redeliver", "redeliver_flow"), parameters, _show_dict)


def cleanup(argv: list[str]) -> int:
    """`cleanup [--run-id ID] [--apply]`: remove HOLD₂ data of runs that verify now."""
    parser = _target_parser("cleanup", "Remove HOLD₂ data of delivered runs that verify now (dry run by default).")
    parser.add_argument("--run-id", help="only this run (default: every delivered run)")
    parser.add_argument("--apply", action="store_true", help="really delete (default: only list)")
    args = parser.parse_args(argv)
    parameters = _picked(args, "run_id", "apply", *_TARGET_OPTIONS)
    return execute(lambda: _flow_of("bqhold.flows.cleanup", "cleanup_flow"), parameters, _show_dict)


def abandon(argv: list[str]) -> int:
    """`abandon --run-id ID`: remove a run's rows from the warehouse so its files can be staged again."""
    parser = _target_parser(
        "abandon",
        "Give a run up: remove its rows from the warehouse and stop counting its files and dedupe keys, so the "
        "job's next run stages those files again from HOLD₁.",
    )
    parser.add_argument("--run-id", required=True, help="the run to give up")
    parser.add_argument("--table", help="destination table (default: the run's)")
    args = parser.parse_args(argv)
    parameters = _picked(args, "run_id", "table", *_TARGET_OPTIONS)
    return execute(lambda: _flow_of("bqhold.flows.abandon", "abandon_flow"), parameters, _show_dict)


def repair(argv: list[str]) -> int:
    """`repair --run-id ID`: re-stage a run's damaged HOLD₂ segments from HOLD₁."""
    parser = argparse.ArgumentParser(
        prog="python flows/run.py repair",
        description="Check a run's HOLD₂ segments against what their batches committed, and write each damaged "
        "one again from HOLD₁ (which must still hold the same bytes).",
    )
    parser.add_argument("--hold-dir", default=DEFAULT_HOLD_DIR, help=f"the hold directory (default {DEFAULT_HOLD_DIR})")
    parser.add_argument("--run-id", required=True, help="the run to repair")
    parser.add_argument(
        "--max-record-bytes",
        type=int,
        default=DEFAULT_MAX_RECORD_BYTES,
        help="the limit the run was staged with (default: the default)",
    )
    args = parser.parse_args(argv)
    parameters = _picked(args, "run_id", "hold_dir", "max_record_bytes")
    return execute(lambda: _flow_of("bqhold.flows.repair", "repair_flow"), parameters, _show_dict)


def report(argv: list[str]) -> int:
    """`report [--run-id ID] [--chart PATH]`: time and memory by stage, and a PNG chart."""
    parser = argparse.ArgumentParser(
        prog="python flows/run.py report", description="Where a run's time and memory went."
    )
    parser.add_argument("--hold-dir", default=DEFAULT_HOLD_DIR, help=f"the hold directory (default {DEFAULT_HOLD_DIR})")
    parser.add_argument("--run-id", help="the run (default: the newest)")
    parser.add_argument("--chart", type=Path, help="where to write the PNG (default: in the run's directory)")
    args = parser.parse_args(argv)
    from bqhold.flows._report import report as build_report

    try:
        print(build_report(Path(args.hold_dir), args.run_id, args.chart))
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    return ExitCode.DELIVERED


def replay(argv: list[str]) -> int:
    """`replay PATH`: deliver the (fixed) records of a quarantine file, exactly once, through the
    job that quarantined them, with its options."""
    parser = argparse.ArgumentParser(
        prog="python flows/run.py replay",
        description="Deliver the records of a quarantine file (fix them in place or in a copy first) "
        "with the pipeline, table, key and warehouse of the run that quarantined them. "
        "Replaying the same file again loads nothing.",
    )
    parser.add_argument("path", type=Path, help="runs/RUN/quarantine/batch-N.jsonl in HOLD₂, or a fixed copy of it")
    parser.add_argument(
        "--hold-dir", help=f"the run's hold directory (default: the one PATH lies in, else {DEFAULT_HOLD_DIR})"
    )
    parser.add_argument("--max-error-rate", help="as for the main command")
    parser.add_argument("--summary-json", help="also write the run summary as JSON to this path")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--gcp-credentials-block", help="name of a prefect-gcp GcpCredentials block (default: ADC)")
    parser.add_argument("--location", help="the BigQuery dataset's location")
    parser.add_argument("--staging-bucket", help=STAGING_BUCKET_HELP)
    args = parser.parse_args(argv)
    from bqhold.tasks.replay import hold_dir_of, prepare_replay

    hold = Path(args.hold_dir) if args.hold_dir else hold_dir_of(args.path) or Path(DEFAULT_HOLD_DIR)
    try:
        prepared = prepare_replay(args.path, hold)
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    job = prepared.run.job
    forwarded = [
        *("--input", str(prepared.input), "--pipeline", job.pipeline, "--table", job.table),
        *("--hold-dir", str(hold), "--warehouse", job.warehouse),
        *(("--key", job.key) if job.key is not None else ()),
        *(("--no-progress",) if args.no_progress else ()),
    ]
    for name in ("max_error_rate", "summary_json", "gcp_credentials_block", "location", "staging_bucket"):
        if getattr(args, name) is not None:
            forwarded += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
    return run(forwarded)


def _flow_of(module: str, name: str) -> Flow:
    return getattr(importlib.import_module(module), name)


SUBCOMMANDS: dict[str, Callable[[list[str]], int]] = {
    "redeliver": redeliver,
    "cleanup": cleanup,
    "abandon": abandon,
    "repair": repair,
    "report": report,
    "replay": replay,
}


def main() -> None:
    """Entry point."""
    argv = sys.argv[1:]
    command = SUBCOMMANDS.get(argv[0]) if argv else None
    sys.exit(command(argv[1:]) if command else run(argv))


if __name__ == "__main__":
    main()
