"""The run summary as a person reads it in the Prefect UI: sections of labelled rows with units
and thousands separators, then what to do next. The machine keys stay in the JSON summary
(docs/design.md, Summary keys); this is only their view."""

from __future__ import annotations

from pathlib import Path

from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.progress import duration_text
from bqhold.tasks.core.summary import NO_RUN, RunSummary, redeliver_command

# A status as a heading says it.
STATUS_TEXT = {
    "delivered": "delivered and verified",
    "already_delivered": "nothing new; the runs that delivered the input still verify",
    "unverified": "loaded, NOT verified",
    "failed": "failed",
    "interrupted": "stopped after a checkpoint",
}


def yes_no(value: bool) -> str:
    """`yes` / `no`."""
    return "yes" if value else "no"


def _mb(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} MB"


def _seconds(value: float | None) -> str:
    return "—" if value is None else duration_text(value)


def _table(rows: list[tuple[str, str]], align: str = "---:") -> list[str]:
    return ["| | |", f"|---|{align}|", *(f"| {label} | {value} |" for label, value in rows)]


def next_step(summary: RunSummary) -> str:
    """What the user does now, for the run's status."""
    if summary.status in ("delivered", "already_delivered"):
        cleanup = run_command("cleanup", summary.run_id, Path(summary.hold_dir)) + " --apply"
        return f"Nothing to do. HOLD₂ keeps the staged rows until `{cleanup}` removes them (after verifying again)."
    if summary.status == "unverified":
        command = redeliver_command(summary.run_id, Path(summary.hold_dir))
        return (
            f"The warehouse's counts differ from HOLD₂'s ledger. Run `{command}` (or the redeliver deployment) "
            "to load the missing batches again from HOLD₂."
        )
    if summary.status == "interrupted":
        return "Run the same job again (or retry this flow run): it resumes at the checkpoint."
    return (
        "Fix what the message says, then retry this flow run (or re-run the same command): "
        "it resumes from the checkpoint."
    )


def _rows(summary: RunSummary) -> list[str]:
    rows = [
        ("read from HOLD₁", f"{summary.rows_read:,}"),
        ("staged into HOLD₂", f"{summary.rows_written:,}"),
        ("quarantined (bad records, kept for replay)", f"{summary.rows_quarantined:,}"),
        ("skipped as duplicates of the key", f"{summary.duplicates_skipped:,}"),
        ("in the warehouse for this run", f"{summary.rows_loaded:,}"),
        ("verified against HOLD₂'s ledger", yes_no(summary.verified)),
    ]
    if summary.files_skipped:
        rows.append(("files skipped (delivered before, unchanged)", f"{len(summary.files_skipped):,}"))
    return ["### Rows", "", *_table(rows)]


def _places(summary: RunSummary) -> list[str]:
    rows = [
        ("pipeline", summary.pipeline),
        ("warehouse", f"`{summary.warehouse}`"),
        ("table", f"`{summary.table}`"),
        ("HOLD₂", f"`{summary.hold_dir}`"),
    ]
    if summary.quarantine_dir:
        rows.append(("quarantine", f"`{summary.quarantine_dir}`"))
    return ["### Where", "", *_table(rows, align="---")]


def _time_and_memory(summary: RunSummary) -> list[str]:
    batches = f"{summary.batches:,} (last size {summary.final_batch_size:,} rows)"
    if summary.resumed_from_batch is not None:
        batches += f", this session from batch {summary.resumed_from_batch:,}"
    rows = [
        ("this session (plan to summary)", _seconds(summary.duration_s)),
        ("staging (HOLD₁ → HOLD₂)", _seconds(summary.stage_s)),
        ("loading and verifying", _seconds(summary.load_s)),
        ("start-up (process start to the first batch)", _seconds(summary.first_batch_s)),
        ("batches", batches),
        ("peak memory (RSS)", _mb(summary.peak_rss_mb)),
        ("memory at the first batch", _mb(summary.first_batch_rss_mb)),
        (
            "memory guard",
            f"{summary.guard_shrinks:,} smaller, {summary.guard_grows:,} larger, "
            f"{summary.oom_retries:,} out-of-memory retries",
        ),
    ]
    return ["### Time and memory", "", *_table(rows)]


def summary_markdown(summary: RunSummary) -> str:
    """The `bqhold-summary` artifact: headline, message, rows, places, time and memory, next step."""
    run = "no run was started" if summary.run_id == NO_RUN else f"run `{summary.run_id}`"
    lines = [
        f"## bqhold {run}: {STATUS_TEXT.get(summary.status, summary.status)}",
        "",
        f"Exit code {summary.exit_code}. {summary.message}".rstrip(),
        "",
        *_rows(summary),
        "",
        *_places(summary),
        "",
        *_time_and_memory(summary),
        "",
    ]
    if summary.agent:
        lines += ["Agent calls and their cost: the `bqhold-agent-usage` artifact.", ""]
    lines += ["### Next", "", next_step(summary), ""]
    return "\n".join(lines)
