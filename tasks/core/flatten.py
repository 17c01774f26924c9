"""Turn nested records into warehouse columns: objects flattened, lists kept as JSON text.

`{"user": {"id": 1}, "tags": ["a"]}` becomes columns `user__id` (INT64) and `tags` (STRING
holding `["a"]`). Names are normalised to what both DuckDB and BigQuery accept without
quoting surprises: lower case letters, digits and underscores.
"""

from __future__ import annotations

import re

import polars as pl

from tasks.core.errors import InputError

SEPARATOR = "__"
_INVALID = re.compile(r"[^a-z0-9_]+")
_MAX_NAME = 300  # BigQuery's limit for a column name
# Prefixes BigQuery reserves for its own pseudo-columns.
_RESERVED_PREFIXES = ("_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colidentifier")


def column_name(raw: str) -> str:
    """The warehouse-safe form of one field name (`User Name` -> `user_name`, `_id` stays)."""
    lowered = raw.strip().lower()
    leading = len(lowered) - len(lowered.lstrip("_"))
    name = "_" * leading + (_INVALID.sub("_", lowered[leading:]).strip("_") or "field")
    if name[0].isdigit() or name.startswith(_RESERVED_PREFIXES):
        name = f"f_{name}" if name.startswith("_") else f"_{name}"
    return name[:_MAX_NAME]


def _list_as_json(name: str) -> pl.Expr:
    encoded = pl.struct(pl.col(name).alias("v")).struct.json_encode().str.slice(len('{"v":')).str.strip_suffix("}")
    return pl.when(pl.col(name).is_null()).then(None).otherwise(encoded).alias(name)


def _check_unique(sources: dict[str, str], source: str, target: str) -> None:
    if target in sources:
        raise InputError(
            f"fields {sources[target]!r} and {source!r} both become column {target!r}; rename one in the transform"
        )
    sources[target] = source


def _unnest_once(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    sources: dict[str, str] = {}
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Struct):
            for inner in dtype.fields:
                target = f"{name}{SEPARATOR}{inner.name}"
                _check_unique(sources, f"{name}.{inner.name}", target)
                exprs.append(pl.col(name).struct.field(inner.name).alias(target))
            continue
        _check_unique(sources, name, name)
        exprs.append(_list_as_json(name) if isinstance(dtype, (pl.List, pl.Array)) else pl.col(name))
    return frame.select(exprs)


def flatten(frame: pl.DataFrame, keep: frozenset[str] = frozenset()) -> pl.DataFrame:
    """Flatten nested objects into `a__b` columns, lists into JSON text, names normalised.

    Columns in `keep` (bqhold's own, such as the source line) keep their names.
    """
    while any(isinstance(dtype, (pl.Struct, pl.List, pl.Array)) for dtype in frame.schema.values()):
        frame = _unnest_once(frame)
    renames = {name: name if name in keep else column_name(name) for name in frame.columns}
    sources: dict[str, str] = {}
    for original, new in renames.items():
        _check_unique(sources, original, new)
    return frame.rename(renames)
