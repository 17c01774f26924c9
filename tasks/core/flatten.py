"""Turn nested records into warehouse columns: objects flattened, lists kept as JSON text.

`{"user": {"id": 1}, "tags": ["a"]}` becomes columns `user__id` (INT64) and `tags` (STRING
holding `["a"]`). Field names become column names BigQuery and DuckDB both accept: lower case
(BigQuery column names ignore case, so `Name` and `name` ARE one column), letters and digits
of any script kept (`café`, `名前`), ASCII punctuation and spaces as one underscore (`First
Name` -> `first_name`, as always), any other character as its code point (`😀` -> `u1f600`).
A record with two fields that still become one column goes to quarantine with its line.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import polars as pl

from bqhold.tasks.core.records import QUARANTINE_REASON

SEPARATOR = "__"
MAX_NAME = 300  # BigQuery's limit for a column name
# Prefixes BigQuery reserves for its own pseudo-columns.
_RESERVED_PREFIXES = ("_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colidentifier")
_GAP = "\0"  # marks a character that is not kept; a run of them becomes one underscore
_GAPS = re.compile(f"{_GAP}+")


def _kept(char: str) -> bool:
    """Whether a (lower-case) character may stay in a column name: what BigQuery's flexible
    column names take of letters (any script, with their marks), digits and the underscore."""
    if char.isascii():
        return char.isalnum() or char == "_"
    return unicodedata.category(char)[0] in "LMN"


def _spelled(char: str, unicode: bool) -> str:
    if _kept(char) and (unicode or char.isascii()):
        return char
    if char.isascii() or not unicode:
        return _GAP
    return f"{_GAP}u{ord(char):x}{_GAP}"


def _normalise(raw: str, unicode: bool) -> str:
    lowered = raw.strip().lower()
    body = lowered.lstrip("_")
    spelled = _GAPS.sub("_", "".join(_spelled(char, unicode) for char in body)).strip("_")
    name = "_" * (len(lowered) - len(body)) + (spelled or "field")
    if not (name[0].isalpha() or name[0] == "_") or name.startswith(_RESERVED_PREFIXES):
        name = f"f_{name}" if name.startswith("_") else f"_{name}"
    return name[:MAX_NAME]


@functools.lru_cache(maxsize=65536)
def column_name(raw: str) -> str:
    """The column one field name becomes (`User Name` -> `user_name`, `Café` -> `café`, `😀` -> `u1f600`)."""
    return _normalise(raw, unicode=True)


def table_name(raw: str) -> str:
    """A table name from free text: plain ASCII (`Données 2026` -> `donn_es_2026`)."""
    return _normalise(raw, unicode=False)


def is_column_name(name: str) -> bool:
    """Whether `name` is a column name as `column_name` makes them (safe inside double quotes)."""
    return (
        0 < len(name) <= MAX_NAME
        and name == name.lower()
        and (name[0].isalpha() or name[0] == "_")
        and all(_kept(char) for char in name)
    )


def path_column(path: Sequence[str]) -> str:
    """The column of a nested field given by its path of raw names (`("User", "Id")` -> `user__id`)."""
    return column_name(SEPARATOR.join(path))


def field_column(field: str) -> str:
    """The column a dotted field name on the command line means (`user.id` -> `user__id`)."""
    return SEPARATOR.join(column_name(part) for part in field.split("."))


@dataclass(frozen=True)
class _Leaf:
    """One flat column of the frame to be: where it comes from, and how to compute it."""

    path: tuple[str, ...]
    expr: pl.Expr
    dtype: pl.DataType

    @property
    def field(self) -> str:
        """The field as a user would name it (`user.id`)."""
        return ".".join(self.path)


def _list_as_json(expr: pl.Expr) -> pl.Expr:
    encoded = pl.struct(expr.alias("v")).struct.json_encode().str.slice(len('{"v":')).str.strip_suffix("}")
    return pl.when(expr.is_null()).then(None).otherwise(encoded)


def _leaves(path: tuple[str, ...], expr: pl.Expr, dtype: pl.DataType) -> Iterator[_Leaf]:
    if isinstance(dtype, pl.Struct):
        for inner in dtype.fields:
            yield from _leaves((*path, inner.name), expr.struct.field(inner.name), inner.dtype)
    elif isinstance(dtype, (pl.List, pl.Array)):
        yield _Leaf(path, _list_as_json(expr), pl.String())
    else:
        yield _Leaf(path, expr, dtype)


def _fields(names: Iterable[str]) -> str:
    quoted = [repr(name) for name in names]
    return f"fields {quoted[0]} and {quoted[1]} both" if len(quoted) == 2 else f"fields {', '.join(quoted)} all"


def _merged(target: str, leaves: list[_Leaf]) -> tuple[pl.Expr, pl.Expr]:
    """One column from several fields that become it, and the reason for each record that has
    more than one of them (or one of another type than the first): it goes to quarantine."""
    alike = [leaf.expr for leaf in leaves if leaf.dtype == leaves[0].dtype]
    unlike = [leaf.expr.is_not_null() for leaf in leaves if leaf.dtype != leaves[0].dtype]
    clash = pl.sum_horizontal([leaf.expr.is_not_null() for leaf in leaves]) > 1
    if unlike:
        clash = clash | pl.any_horizontal(unlike)
    reason = f"{_fields(leaf.field for leaf in leaves)} become column {target!r}; rename one in the input or transform"
    return pl.coalesce(alike).alias(target), pl.when(clash).then(pl.lit(reason))


def flatten(
    frame: pl.DataFrame, keep: frozenset[str] = frozenset(), reserved: frozenset[str] = frozenset()
) -> pl.DataFrame:
    """Flatten nested objects into `a__b` columns, lists into JSON text, names normalised.

    Columns in `keep` (bqhold's own, such as the source line) keep their names; a field that
    would become one of them or one of `reserved` is prefixed (`_batch` -> `f__batch`). A record
    with two fields that become one column gets a reason in `_quarantine_reason`.
    """
    taken = keep | reserved | {QUARANTINE_REASON}
    columns: dict[str, list[_Leaf] | None] = {}  # in frame order; None for a kept column
    for name, dtype in frame.schema.items():
        if name in keep:
            columns[name] = None
            continue
        for leaf in _leaves((name,), pl.col(name), dtype):
            target = path_column(leaf.path)
            columns.setdefault(f"f_{target}" if target in taken else target, []).append(leaf)
    exprs, reasons = [], []
    for target, leaves in columns.items():
        if leaves is None:
            if target != QUARANTINE_REASON:
                exprs.append(pl.col(target))
        elif len(leaves) == 1:
            exprs.append(leaves[0].expr.alias(target))
        else:
            merged, reason = _merged(target, leaves)
            exprs.append(merged)
            reasons.append(reason)
    if QUARANTINE_REASON in columns or reasons:
        earlier = [pl.col(QUARANTINE_REASON)] if QUARANTINE_REASON in columns else []
        exprs.append(pl.coalesce([*earlier, *reasons]).alias(QUARANTINE_REASON))
    return frame.select(exprs)
