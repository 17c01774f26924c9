"""Quarantine files: one JSON line per rejected record, with the record's original bytes.

    {"run_id": "r1", "batch": 7, "source": "/in/a.jsonl", "format": "jsonl", "line": 42,
     "offset": 1234, "reason": "malformed JSON: ...", "record": "{\\"id\\": 1, ..."}

`record` holds the record exactly as the source had it, as text, without the line break that
ended it; bytes that are not UTF-8 are in `record_base64` instead, and a record over
`INLINE_BYTES` is in a side file next to the quarantine file, named in `record_file` (with its
size in `record_bytes`). A CSV record also carries its file's `header`. A Parquet row, which
has no bytes of its own, is kept as the JSON of the row as read.
"""

from __future__ import annotations

import base64
import json

from tasks.core.records import QuarantineEntry

INLINE_BYTES = 1 << 20  # larger records go to a side file, streamed, never held whole


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
