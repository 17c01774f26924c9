"""bqhold's local command: run a pipeline's flow on this machine and print its summary.

    python flows/run.py                                  # the bundled sample -> embedded DuckDB
    python flows/run.py --input data/*.jsonl --key id --table orders
    python flows/run.py --input big.jsonl --warehouse bigquery://my-project/analytics

Exit codes: 0 delivered and verified · 1 failed, re-run to resume · 2 unusable input or usage ·
3 loaded but not verified (HOLD₂ kept) · 130/143 interrupted after a checkpoint.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bqhold.flows._flags import add_option_flags, as_flags, given
from bqhold.flows._local_server import LocalPrefectServer
from bqhold.flows._parameters import ON_RUN_DEFAULTS
from bqhold.flows._pipelines import available, find_command, find_pipeline
from bqhold.tasks.core.errors import BqholdError, ConfigError, ExitCode, exit_code_for, without_tracebacks
from bqhold.tasks.core.inputs import default_spool_dir, resolve_inputs
from bqhold.tasks.core.options import ALL_OPTIONS, DEFAULT_HOLD_DIR, JobOptions, options_from
from bqhold.tasks.core.paths import warehouse_file, writable_directory
from bqhold.tasks.core.readers import validate_readable
from bqhold.tasks.core.summary import NO_RUN, RunSummary, summary_of
from bqhold.tasks.core.warehouse_url import parse_warehouse

if TYPE_CHECKING:
    from prefect import Flow

ROOT = Path(__file__).resolve().parent.parent
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


EXIT_CODES = (
    "Exit codes: 0 delivered · 1 failed, re-run to resume · 2 unusable input or usage · "
    "3 not verified (HOLD₂ kept) · 130/143 interrupted."
)


def build_parser(prog: str = "python flows/run.py") -> argparse.ArgumentParser:
    """The main job's flags: every job option (tasks/core/options.py), plus the command's own."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Stage HOLD₁ into HOLD₂, deliver it exactly once to the warehouse, verify it.",
        epilog=f"{EXIT_CODES}\n\n{commands_help(prog)}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--pipeline",
        default="generic",
        help=f"pipeline (a module in flows/): {', '.join(available())} (default generic)",
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (for CI and logs)")
    add_option_flags(parser, ALL_OPTIONS, {"input": f"flows/sample/{SAMPLE_INPUT.name}"})
    return parser


def job_values(args: argparse.Namespace) -> dict[str, Any]:
    """The options typed, plus the bundled sample (and its key) when no --input is given."""
    values = given(args, ALL_OPTIONS)
    if "input" not in values:
        values["input"] = str(SAMPLE_INPUT)
        values.setdefault("key", SAMPLE_KEY)
    return values


def check_destinations(options: JobOptions) -> None:
    """Fail fast (before Prefect starts) on a place the run could never write: the hold dir, the
    DuckDB warehouse file (unless blocks name them), and a stale --summary-json of an earlier run."""
    if not options.staging_area:
        writable_directory(options.hold_dir, "--hold-dir")
    target = parse_warehouse(options.warehouse)
    if target.kind == "duckdb" and not options.bigquery_target:
        warehouse_file(target.path)
    if options.summary_json:  # if this run cannot write its own, no earlier run's may stand in for it
        try:
            Path(options.summary_json).unlink(missing_ok=True)
        except OSError as exc:
            raise ConfigError(f"--summary-json {options.summary_json} cannot be replaced ({exc.strerror})") from exc


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
        show(result if not isinstance(result, BaseException) else summary_of(result))
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


def run(argv: list[str], prog: str = "python flows/run.py") -> int:
    """Stage HOLD₁ into HOLD₂, deliver it exactly once, verify it (the default command).

    Parse, check the input, run the pipeline's flow, print the summary it returns."""
    args = build_parser(prog).parse_args(argv)
    values = job_values(args)
    try:
        pipeline = find_pipeline(args.pipeline)
        options = options_from(values)
        if not options.bigquery_target:  # else the block's warehouse decides what combines
            options.check_combination()
        # Fail fast, before Prefect starts (objects in Cloud Storage are listed by the run's plan).
        inputs = () if options.input.startswith("gs://") else resolve_inputs(options.input, default_spool_dir())
        for item in inputs:
            validate_readable(item)
        check_destinations(options)
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)

    def progress() -> AbstractContextManager:
        from bqhold.flows._console import CheckpointProgress

        return CheckpointProgress(options.hold_dir, inputs, options.memory_limit_mb, options.memory_threshold)

    def show(summary: dict | None) -> None:
        if summary is not None and summary["run_id"] != NO_RUN:  # else nothing ran: the error line says it all
            print(RunSummary(**summary).render())

    showing_progress = not args.no_progress and sys.stderr.isatty()
    return execute(pipeline.load_flow, values, show, progress if showing_progress else None)


def _show_dict(result: Any) -> None:
    if isinstance(result, dict):
        print(json.dumps(result, indent=2))


def _command_parser(prog: str, name: str, description: str) -> argparse.ArgumentParser:
    """A parser for command `name` with its options' flags (as its flow takes them)."""
    parser = argparse.ArgumentParser(prog=f"{prog} {name}", description=description)
    add_option_flags(parser, find_command(name).options, ON_RUN_DEFAULTS)
    return parser


def _run_command(args: argparse.Namespace, name: str, *own: str) -> int:
    """Run command `name`'s flow with the command's own arguments and the options typed."""
    command = find_command(name)
    parameters = {**{key: getattr(args, key) for key in own}, **given(args, command.options)}
    if parameters.get("warehouse"):
        try:
            parse_warehouse(parameters["warehouse"])
        except BqholdError as exc:
            return fail(str(exc), exc.exit_code)
    return execute(command.load_flow, parameters, _show_dict)


def redeliver(argv: list[str], prog: str) -> int:
    """Load an existing HOLD₂ run into the warehouse again (where it lacks rows) and verify it."""
    parser = _command_parser(prog, "redeliver", inspect.getdoc(redeliver))
    parser.add_argument("--run-id", required=True, help="the run to redeliver")
    return _run_command(parser.parse_args(argv), "redeliver", "run_id")


def cleanup(argv: list[str], prog: str) -> int:
    """Remove HOLD₂ data of delivered runs that verify now (dry run by default)."""
    parser = _command_parser(prog, "cleanup", inspect.getdoc(cleanup))
    parser.add_argument("--run-id", help="only this run (default: every delivered run)")
    parser.add_argument("--apply", action="store_true", help="really delete (default: only list)")
    return _run_command(parser.parse_args(argv), "cleanup", "run_id", "apply")


def abandon(argv: list[str], prog: str) -> int:
    """Give a run up, so that the job's next run stages its files again from HOLD₁.

    Its rows are removed from the warehouse, and its files and dedupe keys no longer count."""
    parser = _command_parser(prog, "abandon", inspect.getdoc(abandon))
    parser.add_argument("--run-id", required=True, help="the run to give up")
    return _run_command(parser.parse_args(argv), "abandon", "run_id")


def repair(argv: list[str], prog: str) -> int:
    """Re-stage a run's damaged HOLD₂ segments from HOLD₁.

    Each segment is checked against what its batch committed; each damaged one is written again
    from HOLD₁, which must still hold the same bytes."""
    parser = _command_parser(prog, "repair", inspect.getdoc(repair))
    parser.add_argument("--run-id", required=True, help="the run to repair")
    return _run_command(parser.parse_args(argv), "repair", "run_id")


def report(argv: list[str], prog: str) -> int:
    """Where a run's time and memory went: a table by stage, and a PNG chart of memory against the
    limit and the guard's levels, the stages and the batch size's changes (the limit is the one read
    here now: give the run's own --memory-limit-mb for a run made elsewhere)."""
    parser = argparse.ArgumentParser(prog=f"{prog} report", description=inspect.getdoc(report))
    add_option_flags(parser, ("hold_dir", "memory_limit_mb", "memory_threshold"))
    parser.add_argument("--run-id", help="the run (default: the newest)")
    parser.add_argument("--chart", type=Path, help="where to write the PNG (default: in the run's directory)")
    args = parser.parse_args(argv)
    from bqhold.flows._report import memory_limits
    from bqhold.flows._report import report as build_report

    limits = memory_limits(getattr(args, "memory_limit_mb", None), getattr(args, "memory_threshold", None))
    try:
        print(build_report(Path(getattr(args, "hold_dir", DEFAULT_HOLD_DIR)), args.run_id, args.chart, limits))
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    return ExitCode.DELIVERED


# Options of the main job that `replay` passes on; the rest come from the run that quarantined.
REPLAY_OPTIONS = ("max_error_rate", "summary_json", "gcp_credentials_block", "location", "staging_bucket")


def replay(argv: list[str], prog: str) -> int:
    """Deliver the (fixed) records of a quarantine file, exactly once.

    Fix them in place or in a copy first; they go through the pipeline, table, key and warehouse
    of the run that quarantined them. Replaying the same file again loads nothing."""
    parser = argparse.ArgumentParser(prog=f"{prog} replay", description=inspect.getdoc(replay))
    parser.add_argument("path", type=Path, help="runs/RUN/quarantine/batch-N.jsonl in HOLD₂, or a fixed copy of it")
    parser.add_argument(
        "--hold-dir", help=f"the run's hold directory (default: the one PATH lies in, else {DEFAULT_HOLD_DIR})"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_option_flags(parser, REPLAY_OPTIONS)
    args = parser.parse_args(argv)
    from bqhold.tasks.storage.replay import hold_dir_of, prepare_replay

    hold = Path(args.hold_dir) if args.hold_dir else hold_dir_of(args.path) or Path(DEFAULT_HOLD_DIR)
    try:
        prepared = prepare_replay(args.path, hold)
    except BqholdError as exc:
        return fail(str(exc), exc.exit_code)
    job = prepared.run.job
    forwarded = {
        "input": str(prepared.input),
        "table": job.table,
        "hold_dir": str(hold),
        "warehouse": job.warehouse,
        "key": job.key,
        **given(args, REPLAY_OPTIONS),
    }
    return run(
        [*as_flags(forwarded), "--pipeline", job.pipeline, *(("--no-progress",) if args.no_progress else ())], prog
    )


SUBCOMMANDS: dict[str, Callable[[list[str], str], int]] = {
    "run": run,
    "redeliver": redeliver,
    "cleanup": cleanup,
    "abandon": abandon,
    "repair": repair,
    "report": report,
    "replay": replay,
}


def commands_help(prog: str) -> str:
    """The list of subcommands, one line each, for `--help`."""
    lines = [f"  {name:<10} {inspect.getdoc(command).splitlines()[0]}" for name, command in SUBCOMMANDS.items()]
    usage = f"{prog} COMMAND --help shows a command's options; {prog} [options] with no command runs the main job."
    return "commands:\n" + "\n".join(lines) + "\n\n" + usage


def dispatch(argv: list[str], prog: str) -> int:
    """Run the subcommand `argv` starts with; the main job when there is none — except that the
    `bqhold` command alone, or with only --help, lists its commands."""
    if argv and argv[0] in SUBCOMMANDS:
        return SUBCOMMANDS[argv[0]](argv[1:], prog)
    if prog == "bqhold" and (not argv or argv[0] in ("-h", "--help")):
        print(f"usage: bqhold COMMAND [options]\n\n{commands_help(prog)}")
        return ExitCode.DELIVERED if argv else ExitCode.UNUSABLE_INPUT
    return run(argv, prog)


def main() -> None:
    """Entry point of `python flows/run.py` and of the `bqhold` command."""
    prog = "bqhold" if Path(sys.argv[0]).name == "bqhold" else "python flows/run.py"
    sys.exit(dispatch(sys.argv[1:], prog))


if __name__ == "__main__":
    main()
