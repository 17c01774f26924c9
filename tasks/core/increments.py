"""What a run of a job still has to read: new files, the new tails of grown ones — and when not to go on.

A job delivers each HOLD₁ file once. Its delivered runs' ledgers say how far they read each file
and what the bytes up to there were (crc32c). A new run then reads

- a file no delivered run read: all of it;
- a file that grew after its delivered part (the same bytes up to there, more after): the tail;
- nothing of a file whose size and mtime are as delivered, or whose bytes are (only touched);

and refuses to go on when a delivered file changed in any other way: its records were loaded
once already, and loading the new version beside them would deliver some records twice and
others not at all. Resuming an unfinished run checks the same of the file it is in the middle of.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from enum import Enum
from pathlib import Path

from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.errors import InputError, ResumeRefused
from bqhold.tasks.core.inputs import InputFile, InputFormat, crc32c_of, digest_upto
from bqhold.tasks.core.ledger import SourceSpan
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.runs import RunRecord
from bqhold.tasks.core.table_source import table_end


@dataclass(frozen=True)
class DeliveredFile:
    """How far the job's delivered runs read one file, and what it held up to there."""

    path: str
    run_id: str  # the run that read it last
    format: InputFormat
    end: int  # bytes read (rows for Parquet)
    line: int
    crc: int | None  # crc32c of the bytes before `end` (Parquet: of the whole file); None: not recorded
    size: int  # the file's bytes then
    mtime_ns: int


class Change(str, Enum):
    """How a matched file compares with what the job delivered of it."""

    NEW = "new"  # never delivered: read all of it
    GROWN = "grown"  # delivered up to a point that is unchanged; read the rest
    UNCHANGED = "unchanged"  # delivered as it is: skip it
    CHANGED = "changed"  # delivered, and different now: refuse


@dataclass(frozen=True)
class FileDecision:
    """One matched file: what to do with it, and what was delivered of it."""

    file: InputFile  # for GROWN, starting where the delivered part ends
    change: Change
    delivered: DeliveredFile | None = None
    detail: str = ""  # for CHANGED: how it changed


def delivered_files(runs: list[RunRecord], spans: list[tuple[str, SourceSpan]]) -> dict[str, DeliveredFile]:
    """Per input (its path, or a spooled one's origin), the furthest point to which one of `runs`
    (delivered runs of one job) read it.

    `spans` are the runs' ledger spans that reached a file's end. A run recorded before spans
    existed counts as having read its files to the size they had when it was planned.
    """
    by_id = {run.run_id: run for run in runs}
    found: dict[str, DeliveredFile] = {}

    def keep(candidate: DeliveredFile) -> None:
        current = found.get(candidate.path)
        if current is None or candidate.end >= current.end:
            found[candidate.path] = candidate

    with_spans = {run_id for run_id, _ in spans}
    for run in runs:
        if run.run_id not in with_spans:
            for item in run.inputs:
                end = item.size if item.format is not InputFormat.PARQUET else 0
                keep(DeliveredFile(item.name, run.run_id, item.format, end, 0, None, item.size, item.mtime_ns))
    for run_id, span in spans:
        item = by_id[run_id].inputs[span.end.file_index]
        crc = span.end.crc if item.format is not InputFormat.PARQUET or span.end.crc else None
        keep(
            DeliveredFile(
                item.name,
                run_id,
                item.format,
                span.end.offset,
                span.end.line,
                crc,
                span.size if span.size is not None else item.size,
                span.mtime_ns if span.mtime_ns is not None else item.mtime_ns,
            )
        )
    return found


def _text_decision(item: InputFile, seen: DeliveredFile) -> FileDecision:
    if item.size < seen.end:
        return FileDecision(
            item, Change.CHANGED, seen, f"it shrank from {seen.end:,} to {item.size:,} bytes since run {seen.run_id}"
        )
    if seen.crc is None:
        return FileDecision(
            item, Change.CHANGED, seen, f"it changed since run {seen.run_id}, which kept no checksum to compare"
        )
    if digest_upto(item, seen.end) != seen.crc:
        unit = "rows" if item.format.by_rows else "bytes"
        return FileDecision(
            item, Change.CHANGED, seen, f"its first {seen.end:,} {unit} differ from what run {seen.run_id} delivered"
        )
    if item.size == seen.end:
        return FileDecision(item, Change.UNCHANGED, seen)
    tail = replace(item, start_offset=seen.end, start_line=seen.line, start_crc=seen.crc)
    return FileDecision(tail, Change.GROWN, seen)


def decide(item: InputFile, seen: DeliveredFile | None) -> FileDecision:
    """Compare one matched file with what was delivered of it (reads it only when in doubt)."""
    if seen is None:
        return FileDecision(item, Change.NEW)
    if item.mtime_ns == seen.mtime_ns and item.size == seen.size:
        return FileDecision(item, Change.UNCHANGED, seen)
    if item.origin is not None:  # a compressed file or an object: any other version is another file
        return FileDecision(item, Change.CHANGED, seen, f"it was replaced since run {seen.run_id} delivered it")
    if item.format is not InputFormat.PARQUET:
        return _text_decision(item, seen)
    if item.size == seen.size and seen.crc is not None and crc32c_of(item.path) == seen.crc:
        return FileDecision(item, Change.UNCHANGED, seen)
    return FileDecision(item, Change.CHANGED, seen, f"it is not the file run {seen.run_id} delivered")


def changed_files_error(changed: list[FileDecision], hold_dir: Path) -> ResumeRefused:
    """The refusal for delivered files that changed, naming them and the ways out."""
    first = changed[0]
    more = f" (and {len(changed) - 1} more file(s))" if len(changed) > 1 else ""
    return ResumeRefused(
        f"{first.file.name} was delivered by run {first.delivered.run_id} and has changed since: {first.detail}{more}. "
        "Its records are in the warehouse already, so bqhold will not load the new version beside them: restore "
        "the file, or move it out of --input; to replace what was delivered, remove that run's rows with "
        f"`{run_command('abandon', first.delivered.run_id, hold_dir)}` and re-run this command"
    )


def table_problem(item: InputFile, at: Position) -> str | None:
    """Why the rows of a table below `at` are not those staged, or None."""
    try:
        end = table_end(item.path)
    except InputError as exc:
        return str(exc)
    if end < at.offset:
        return f"{item.path} ends at rowid {end:,} now, but rows up to {at.offset:,} were staged"
    if digest_upto(item, at.offset) != at.crc:
        return f"the rows of {item.path} below rowid {at.offset:,}, already staged, differ now"
    return None


def resume_problem(run: RunRecord, at: Position, matched_now: Mapping[str, InputFile]) -> str | None:
    """Why reading on from `at` would splice two versions of a file, or None when it is safe.

    Only the file `at` is in the middle of matters: files before it are staged already (a
    later change is seen when the next run compares them), files after it are not read yet. A
    spooled input is compared with what the input matches now (`matched_now`, by name): the same
    size and mtime (an object: generation), or it was replaced.
    """
    if at.file_index >= len(run.inputs) or at.offset == 0:
        return None
    item = run.inputs[at.file_index]
    if item.format is InputFormat.DUCKDB_TABLE:
        return table_problem(item, at)
    if item.origin is not None:
        now = matched_now.get(item.origin)
        if now is None:
            return f"{item.origin} is gone"
        if (now.size, now.mtime_ns) != (item.size, item.mtime_ns):
            return (
                f"{item.origin} was replaced since it was staged ({item.size:,} bytes, version {item.mtime_ns}, "
                f"now {now.size:,} bytes, version {now.mtime_ns})"
            )
        return None
    try:
        now = os.stat(item.path)
    except OSError:
        return f"{item.path} is gone"
    if (now.st_size, now.st_mtime_ns) == (item.size, item.mtime_ns):
        return None
    if item.format is InputFormat.PARQUET:
        return f"{item.path} changed ({item.size:,} -> {now.st_size:,} bytes)"
    if now.st_size < at.offset:
        return f"{item.path} shrank to {now.st_size:,} bytes, but {at.offset:,} of it were staged"
    if crc32c_of(item.path, at.offset) != at.crc:
        return f"the first {at.offset:,} bytes of {item.path}, already staged, differ now"
    return None
