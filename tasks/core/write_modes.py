"""How a run's rows enter the table (`--write-mode`), the pure part.

- `append`: the run's rows are added, group by group (HOLD₂'s key index keeps a key delivered by
  an earlier run from being staged again).
- `merge`: the run's groups load into a staging table of their own (`staging_table`), which is
  verified against the ledger like any delivery, then one statement makes the table hold each of
  the run's rows by its `--key`: a key the table has is updated, the others are added; the
  staging table is dropped once the run is delivered. Keys are deduplicated within the run only,
  so a key delivered before arrives again and updates its row: the table holds one row per key
  whichever run delivered it, even without HOLD₂'s key index.
- `replace`: as merge, but the table then holds exactly the run's rows (an atomic swap); a new
  run reads all of its input, not only what earlier runs did not deliver.

A run's rows are verified in the table as in append mode when it is delivered. Later, a run
whose rows a later merge updated, or a later replace replaced, holds fewer rows than it staged
(`superseded`): re-verifying it accepts that.
"""

from __future__ import annotations

import re
from typing import Literal

from bqhold.tasks.core.column_types import ColumnType, RecordType, Schema
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.flatten import field_path, staged_steps

WriteMode = Literal["append", "merge", "replace"]
_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def through_staging(mode: str) -> bool:
    """Whether a run in `mode` loads into a staging table first (merge and replace)."""
    return mode in ("merge", "replace")


def staging_table(table: str, run_id: str) -> str:
    """The staging table of a run's merge or replace: named by the run, beside the table."""
    return f"{table}__bqhold_{_UNSAFE.sub('_', run_id)}"


def key_path(schema: Schema, key: str) -> tuple[str, ...]:
    """Where `--key` is in the staged columns: one column (`user__id` when flattened), or a
    record's field (`("user", "id")`); a ConfigError when it is not a scalar there."""
    path = staged_steps(field_path(key), schema)
    kind = schema.get(path[0])
    for part in path[1:]:
        kind = kind.get(part) if isinstance(kind, RecordType) else None
    if not isinstance(kind, ColumnType) or kind is ColumnType.JSON:
        found = "not among the staged columns" if kind is None else f"a {kind.value}"
        raise ConfigError(f"--write-mode merge: key {key!r} is {found}; merge needs a key field holding a value")
    return path
