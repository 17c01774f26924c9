"""How deeply a JSON record nests, found by a byte scan before anything parses it.

Parsing cost explodes with depth (polars' schema inference took 1.9 GB and 13 s for 20 records
nested 200 deep, 22 GB for 500), so a record deeper than `MAX_DEPTH` is quarantined unparsed.
The limit counts every `{` and `[` level, the record's own braces included: 16 levels leave a
record the 15 levels of nesting BigQuery allows for RECORD columns, and cost little (20,000
records 16 levels deep parse in ~1.5 s; 32 levels take 10 times as long and 2.5 GB).
"""

from __future__ import annotations

import re
from itertools import accumulate

MAX_DEPTH = 16

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = [1 if b in b"[{" else -1 for b in range(256)]


def nesting_depth(raw: bytes) -> int:
    """The deepest level of `{`/`[` outside strings in `raw` (1 for a flat object)."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def nesting_problem(raw: bytes, limit: int = MAX_DEPTH) -> str | None:
    """Why `raw` nests too deeply to parse, or None; costs two byte counts for most records."""
    if raw.count(b"{") + raw.count(b"[") <= limit:
        return None
    depth = nesting_depth(raw)
    return too_deep(depth, limit) if depth > limit else None


def too_deep(depth: int, limit: int = MAX_DEPTH) -> str:
    """The quarantine reason for a record nested `depth` levels deep."""
    return f"nested {depth:,} levels deep (limit {limit}; BigQuery allows 15 levels of nesting)"
