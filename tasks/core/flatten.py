"""Name a batch's columns and nested fields as staged; objects become records, columns or JSON.

`{"user": {"id": 1}, "tags": ["a"]}` becomes a record column `user` (STRUCT<id INT64>) and an
array `tags` (ARRAY<STRING>); with `--nesting flatten` the object becomes columns (`user__id`),
with `--nesting json` one JSON column. Arrays stay arrays; an array of arrays, which BigQuery
cannot hold, becomes JSON text. Field names (of columns and of a record's fields alike) become
names BigQuery and DuckDB both accept: lower case (BigQuery column names ignore case, so `Name`
and `name` ARE one column), letters and digits of any script kept (`café`, `名前`), ASCII
punctuation and spaces as one underscore (`First Name` -> `first_name`, as always), any other
character as its code point (`😀` -> `u1f600`).
A record with two fields that still become one column goes to quarantine with its line.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

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


def field_path(field: str) -> tuple[str, ...]:
    """A dotted field name on the command line as staged names (`User.Id` -> `("user", "id")`)."""
    return tuple(column_name(part) for part in field.split("."))


def field_column(field: str) -> str:
    """The column a dotted field name on the command line means when flattened (`user.id` ->
    `user__id`); also how a nested field is named in messages and --string-columns."""
    return SEPARATOR.join(field_path(field))


def staged_steps(path: tuple[str, ...], columns: Container[str]) -> tuple[str, ...]:
    """Where a field (`field_path`) is among `columns`: its flattened column (`("user__id",)`)
    when there is one, else the steps into a record (`("user", "id")`)."""
    flat = SEPARATOR.join(path)
    return (flat,) if flat in columns else path


def field_expr(schema: pl.Schema, field: str) -> pl.Expr | None:
    """Where a dotted field (`user.id`) is in rows of `schema`: its flattened column
    (`user__id`), or the field of a record column (`user`, then `id`); None if in neither."""
    first, *rest = staged_steps(field_path(field), schema)
    if first not in schema:
        return None
    expr, dtype = pl.col(first), schema[first]
    for part in rest:
        inner = {f.name: f.dtype for f in dtype.fields} if isinstance(dtype, pl.Struct) else {}
        if part not in inner:
            return None
        expr, dtype = expr.struct.field(part), inner[part]
    return expr


def field_value(row: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    """The value of a field (`field_path`) in one row (a dict), flattened or in a record; None if absent."""
    value: Any = row
    for part in staged_steps(path, row):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


# What becomes of a nested object (--nesting): a RECORD (STRUCT) column whose fields are named as
# columns are; one column per leaf field (`user__address__city`); or a JSON column.
Nesting = Literal["record", "flatten", "json"]


@dataclass(frozen=True)
class _Leaf:
    """One column of the frame to be: where it comes from, and how to compute it."""

    path: tuple[str, ...]
    expr: pl.Expr
    dtype: pl.DataType
    reason: pl.Expr | None = None  # why a record cannot be staged (two fields of an object become one)
    json: tuple[tuple[str, ...], ...] = ()  # paths below this column that now hold JSON text

    @property
    def field(self) -> str:
        """The field as a user would name it (`user.id`)."""
        return ".".join(self.path)


def json_text(expr: pl.Expr) -> pl.Expr:
    """A value of any type (an object, an array) as its JSON text; null stays null."""
    encoded = pl.struct(expr.alias("v")).struct.json_encode().str.slice(len('{"v":')).str.strip_suffix("}")
    return pl.when(expr.is_null()).then(None).otherwise(encoded)


def _is_array(dtype: pl.DataType) -> bool:
    return isinstance(dtype, (pl.List, pl.Array))


def _nested(
    expr: pl.Expr, dtype: pl.DataType, path: tuple[str, ...], nesting: Nesting, json: list[tuple[str, ...]]
) -> tuple[pl.Expr, pl.Expr | None]:
    """A nested value with its fields named as columns are (a record), or as JSON text where it
    cannot be a record or array (`--nesting json`, an array of arrays: BigQuery has none), and
    the reason for a record whose object has two fields that become one. `path`: the fields
    from the column down, as named in the input; `json` gathers the paths made JSON text."""
    if isinstance(dtype, pl.Struct):
        if nesting == "json":
            json.append(tuple(column_name(part) for part in path[1:]))
            return json_text(expr), None
        groups: dict[str, list[pl.Field]] = {}
        for inner in dtype.fields:
            groups.setdefault(column_name(inner.name), []).append(inner)
        fields, reasons = [], []
        for name, members in groups.items():
            leaves = []
            for inner in members:
                value, reason = _nested(expr.struct.field(inner.name), inner.dtype, (*path, inner.name), nesting, json)
                leaves.append(_Leaf((*path, inner.name), value, inner.dtype))
                reasons += [] if reason is None else [reason]
            if len(leaves) == 1:
                fields.append(leaves[0].expr.alias(name))
            else:
                merged, reason = _merged(name, leaves)
                fields.append(merged)
                reasons.append(reason)
        if not fields:
            return expr, None  # an empty object: nothing to stage yet
        return pl.when(expr.is_not_null()).then(pl.struct(fields)), pl.coalesce(reasons) if reasons else None
    if _is_array(dtype):
        inner = dtype.inner
        if _is_array(inner) or (nesting == "json" and isinstance(inner, pl.Struct)):
            json.append(tuple(column_name(part) for part in path[1:]))
            return json_text(expr), None
        if not isinstance(inner, pl.Struct):
            return expr, None
        items = expr.cast(pl.List(inner))
        value, reason = _nested(pl.element(), inner, path, "record", json)  # an array's objects: records
        why = None if reason is None else items.list.eval(reason).list.drop_nulls().list.first()
        return items.list.eval(value), why
    return expr, None


def _leaves(path: tuple[str, ...], expr: pl.Expr, dtype: pl.DataType, nesting: Nesting) -> Iterator[_Leaf]:
    if isinstance(dtype, pl.Struct) and nesting == "flatten":
        for inner in dtype.fields:
            yield from _leaves((*path, inner.name), expr.struct.field(inner.name), inner.dtype, nesting)
        return
    json: list[tuple[str, ...]] = []
    value, reason = _nested(expr, dtype, path, nesting, json)
    yield _Leaf(path, value, dtype, reason, tuple(json))


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


@dataclass(frozen=True)
class Flattened:
    """A batch with its columns named and nested as staged, and which paths hold JSON text."""

    frame: pl.DataFrame
    json: frozenset[str]  # columns and fields (`a__b`) whose values are now JSON text


def flatten(
    frame: pl.DataFrame,
    keep: frozenset[str] = frozenset(),
    reserved: frozenset[str] = frozenset(),
    nesting: Nesting = "record",
) -> Flattened:
    """Name the columns and fields of `frame` as staged; objects become records, `a__b` columns
    or JSON text by `nesting`; arrays stay arrays (of arrays: JSON text).

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
        for leaf in _leaves((name,), pl.col(name), dtype, nesting):
            target = path_column(leaf.path)
            columns.setdefault(f"f_{target}" if target in taken else target, []).append(leaf)
    exprs, reasons, json = [], [], set()
    for target, leaves in columns.items():
        if leaves is None:
            if target != QUARANTINE_REASON:
                exprs.append(pl.col(target))
        elif len(leaves) == 1:
            exprs.append(leaves[0].expr.alias(target))
            reasons += [] if leaves[0].reason is None else [leaves[0].reason]
            json |= {SEPARATOR.join((target, *below)) for below in leaves[0].json}
        else:
            merged, reason = _merged(target, leaves)
            exprs.append(merged)
            reasons.append(reason)
    if QUARANTINE_REASON in columns or reasons:
        earlier = [pl.col(QUARANTINE_REASON)] if QUARANTINE_REASON in columns else []
        exprs.append(pl.coalesce([*earlier, *reasons]).alias(QUARANTINE_REASON))
    return Flattened(frame.select(exprs), frozenset(json))
