"""Quarantine files: one JSON line per rejected record, with the record's original bytes.

    {"run_id": "r1", "batch": 7, "source": "/in/a.jsonl", "format": "jsonl", "line": 42,
     "offset": 1234, "reason": "malformed JSON: ...", "record": "{\\"id\\": 1, ..."}

`record` holds the record exactly as the source had it, as text, without the line break that
ended it; bytes that are not UTF-8 are in `record_base64` instead, and a record over
`INLINE_BYTES` is in a side file next to the quarantine file, named in `record_file` (with its
size in `record_bytes`). A CSV record also carries its file's `header`. A Parquet row, which
has no bytes of its own, is kept as the JSON of the row as read.

To replay: fix the records in place (or in a copy of the file), then
`python flows/run.py replay PATH`; `read_quarantine` and `write_replay_input` turn the file back
into an input of the records' own format.
"""

from __future__ import annotations

import base64
import binascii
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.records import QuarantineEntry, RecordFormat

INLINE_BYTES = 1 << 20  # larger records go to a side file, streamed, never held whole
_COPY_CHUNK = 1 << 20
# The file a replay writes for each record format: array elements stay an array (they may span
# lines), Parquet rows were kept as JSON.
REPLAY_SUFFIXES = {
    RecordFormat.JSONL: ".jsonl",
    RecordFormat.JSON_ARRAY: ".json",
    RecordFormat.CSV: ".csv",
    RecordFormat.ROWS: ".jsonl",
}


def side_file_name(batch: int, entry: QuarantineEntry, index: int) -> str:
    """The side file of a large record, named from its batch and line (or its place in the batch)."""
    where = f"line-{entry.line}" if entry.line is not None else f"record-{index}"
    return f"batch-{batch:06d}-{where}.bin"


def entry_line(
    entry: QuarantineEntry,
    run_id: str,
    batch: int,
    data: bytes | None = None,
    side_file: str | None = None,
    side_bytes: int = 0,
    header: bytes | None = None,
) -> str:
    """One quarantine line: where the record came from, why, and its original bytes (`data`)
    or the side file that holds them."""
    body: dict[str, object] = {
        "run_id": run_id,
        "batch": batch,
        "source": entry.source,
        "format": entry.format.value,
        "line": entry.line,
        "offset": entry.offset,
        "reason": entry.reason,
    }
    if header is not None:
        body["header"] = header.decode("utf-8", errors="replace")
    if side_file is not None:
        body["record_file"], body["record_bytes"] = side_file, side_bytes
    else:
        try:
            body["record"] = (data or b"").decode("utf-8")
        except UnicodeDecodeError:
            body["record_base64"] = base64.b64encode(data or b"").decode("ascii")
    return json.dumps(body, ensure_ascii=False)


@dataclass(frozen=True)
class QuarantinedRecord:
    """One record of a quarantine file, as the user left it."""

    run_id: str
    format: RecordFormat
    header: bytes | None
    data: bytes | None  # inline bytes, or None when they are in `side_file`
    side_file: Path | None = None

    def copy_to(self, out: BinaryIO) -> None:
        """Write the record's bytes to `out` (a side file streamed, never held whole)."""
        if self.side_file is None:
            out.write(self.data or b"")
            return
        with open(self.side_file, "rb") as handle:
            shutil.copyfileobj(handle, out, _COPY_CHUNK)


def _record(body: dict, where: str, directory: Path) -> QuarantinedRecord:
    try:
        fmt = RecordFormat(body.get("format", RecordFormat.JSONL.value))
        run_id = body["run_id"]
        header = body["header"].encode() if "header" in body else None
        if "record_file" in body:
            side = directory / Path(str(body["record_file"])).name
            if not side.is_file():
                raise InputError(f"{where}: its record_file {side} is missing")
            return QuarantinedRecord(run_id, fmt, header, None, side)
        if "record_base64" in body:
            return QuarantinedRecord(run_id, fmt, header, base64.b64decode(body["record_base64"], validate=True))
        return QuarantinedRecord(run_id, fmt, header, str(body["record"]).encode("utf-8"))
    except (KeyError, ValueError, TypeError, AttributeError, binascii.Error) as exc:
        raise InputError(f"{where}: not a bqhold quarantine entry ({type(exc).__name__}: {exc})") from exc


def read_quarantine(path: Path) -> list[QuarantinedRecord]:
    """The records of a quarantine file; InputError naming the line if one is not an entry."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the quarantine file ({exc})") from exc
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            body = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not valid JSON ({exc.msg} at character {exc.pos + 1})") from exc
        if not isinstance(body, dict):
            raise InputError(f"{where}: not a bqhold quarantine entry (expected a JSON object)")
        records.append(_record(body, where, path.parent))
    if not records:
        raise InputError(f"{path}: holds no quarantined record to replay")
    return records


@dataclass(frozen=True)
class ReplayPlan:
    """What a replay needs to know of a quarantine file: whose records, in which format."""

    run_id: str
    format: RecordFormat
    header: bytes | None


def replay_plan(path: Path, records: list[QuarantinedRecord]) -> ReplayPlan:
    """The run and format all records share; InputError if they mix runs, formats or headers."""
    kinds = {(record.run_id, record.format, record.header) for record in records}
    if len(kinds) > 1:
        described = "; ".join(sorted(f"run {run} {fmt.value}" for run, fmt, _ in kinds))
        raise InputError(
            f"{path}: mixes records of several runs, formats or CSV headers ({described}); "
            "replay them as separate files"
        )
    (run_id, fmt, header) = kinds.pop()
    return ReplayPlan(run_id, fmt, header)


def write_replay_input(out: BinaryIO, plan: ReplayPlan, records: list[QuarantinedRecord]) -> None:
    """The records as an input file of their own format (CSV under its header, array elements
    as an array, anything else one record per line)."""
    if plan.format is RecordFormat.CSV:
        out.write((plan.header or b"").rstrip(b"\r\n") + b"\n")
    if plan.format is RecordFormat.JSON_ARRAY:
        out.write(b"[\n")
    for index, record in enumerate(records):
        if plan.format is RecordFormat.JSON_ARRAY and index:
            out.write(b",\n")
        record.copy_to(out)
        if plan.format is not RecordFormat.JSON_ARRAY:
            out.write(b"\n")
    if plan.format is RecordFormat.JSON_ARRAY:
        out.write(b"\n]\n")
