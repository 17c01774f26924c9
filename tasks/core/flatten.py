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


def column_name(raw: str) -> str:
    """The warehouse-safe form of one field name."""
    name = _INVALID.sub("_", raw.strip().lower()).strip("_") or "field"
    if name[0].isdigit():
        name = f"_{name}"
    return name[:_MAX_NAME]


def _list_as_json(name: str) -> pl.Expr:
    encoded = (
        pl.struct(pl.col(name).alias("v")).struct.json_encode().str.slice(len('{"v":')).str.strip_suffix("}")
    )
    return pl.when(pl.col(name).is_null()).then(None).otherwise(encoded).alias(name)


def _unnest_once(frame: pl.DataFrame) -> pl.DataFrame:
    exprs = []
    for name, dtype in frame.schema.items():
        if isinstance(dtype, pl.Struct):
            exprs.extend(
                pl.col(name).struct.field(inner.name).alias(f"{name}{SEPARATOR}{inner.name}")
                for inner in dtype.fields
            )
        elif isinstance(dtype, (pl.List, pl.Array)):
            exprs.append(_list_as_json(name))
        else:
            exprs.append(pl.col(name))
    return frame.select(exprs)


def flatten(frame: pl.DataFrame, keep: frozenset[str] = frozenset()) -> pl.DataFrame:
    """Flatten nested objects into `a__b` columns, lists into JSON text, names normalised.

    Columns in `keep` (bqhold's own, such as the source line) keep their names.
    """
    while any(isinstance(dtype, (pl.Struct, pl.List, pl.Array)) for dtype in frame.schema.values()):
        frame = _unnest_once(frame)
    renames = {name: name if name in keep else column_name(name) for name in frame.columns}
    seen: dict[str, str] = {}
    for original, new in renames.items():
        if new in seen:
            raise InputError(f"fields {seen[new]!r} and {original!r} both become column {new!r}; rename one in the transform")
        seen[new] = original
    return frame.rename(renames)
