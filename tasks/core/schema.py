"""Conforming a batch to the types HOLD₂ stages its table's columns as.

The first batch that carries a column decides its type; later batches are cast to it. A
value reaches HOLD₂ unchanged in kind and value, or its record goes to quarantine with the
reason: it fits the column's type exactly (`"42"` fits INT64, `"042"` and `true` do not), or
the column widens safely (INT64 -> FLOAT64 when a batch brings fractions, a record gains the
fields a batch brings, anything scalar -> STRING for the columns the user names with
--string-columns). Text whose every value is an ISO 8601 date or timestamp is typed DATE or
TIMESTAMP (`text_values.TEMPORAL_RULE`). Objects are records and arrays are arrays, at any
depth (`column_types`); a pipeline may declare a column's type instead (`declared`). A new
column is added; an all-null column, field or array waits for a value.

A nested field is named by its path joined with `__` (`user__address__city`), as
--string-columns and the key name it, whether the record is flattened or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl

from bqhold.tasks.core.column_types import ArrayType, ColumnType, FieldType, RecordType, Schema, grows, polars_type
from bqhold.tasks.core.flatten import SEPARATOR, json_text
from bqhold.tasks.core.records import QUARANTINE_REASON
from bqhold.tasks.core.text_values import FROM_TEXT, MAX_EXACT_FLOAT_INT, canonical_number, temporal_type

_TEXT_KINDS = (ColumnType.STRING, ColumnType.JSON)
_MADE = "\x00cast:"  # the prefix of a batch's cast columns while it is conformed (no field is named so)


def _is_nested(dtype: pl.DataType) -> bool:
    return isinstance(dtype, (pl.Struct, pl.List, pl.Array))


def scalar_type(dtype: pl.DataType) -> ColumnType | None:
    """The staged type of a scalar polars dtype; None for an all-null column."""
    if dtype == pl.Null:
        return None
    if dtype.is_integer():
        return ColumnType.INT64
    if dtype.is_float() or dtype.is_decimal():
        return ColumnType.FLOAT64
    if dtype == pl.Boolean:
        return ColumnType.BOOL
    if isinstance(dtype, pl.Datetime):
        return ColumnType.TIMESTAMP
    if dtype == pl.Date:
        return ColumnType.DATE
    return ColumnType.STRING


def column_type(dtype: pl.DataType) -> FieldType | None:
    """The staged type for a polars dtype, from the dtype alone (text stays STRING); None while
    nothing in it is typed (all null, an empty object, arrays without values)."""
    if isinstance(dtype, pl.Struct):
        fields = tuple((f.name, kind) for f in dtype.fields if (kind := column_type(f.dtype)) is not None)
        return RecordType(fields) if fields else None
    if isinstance(dtype, (pl.List, pl.Array)):
        if _is_nested(dtype.inner) and not isinstance(dtype.inner, pl.Struct):
            return ColumnType.JSON  # arrays of arrays: BigQuery has none
        item = column_type(dtype.inner)
        return None if item is None else ArrayType(item)  # type: ignore[arg-type]
    return scalar_type(dtype)


def widens(old: FieldType, new: FieldType) -> bool:
    """Whether a column of type `old` can become `new` without changing a value it holds: a
    scalar to STRING, INT64 -> FLOAT64 (only up to 2**53, which whoever widens must check), a
    record gaining fields (its own widening alike), an array whose items widen."""
    return grows(old, new, _scalar_widens)


def _scalar_widens(old: ColumnType, new: FieldType) -> bool:
    return new is ColumnType.STRING or (old is ColumnType.INT64 and new is ColumnType.FLOAT64)


def read_as_text(known: Schema, asked: frozenset[str]) -> frozenset[str]:
    """The columns a reader keeps as text: those the user asked for, and those already staged as
    STRING (their text then arrives as written: `1.50` stays `1.50`, not the float's `1.5`)."""
    return asked | {name for name, kind in known.items() if kind is ColumnType.STRING}


def too_large_to_widen(where: str, column: str, count: int) -> str:
    """The message when INT64 -> FLOAT64 would round integers a column already holds."""
    return (
        f"column {column!r} of {where} holds {count:,} integer(s) beyond 2**53 that FLOAT64 cannot hold exactly, "
        f"so it cannot widen for fractions; stage it as text with --string-columns {column}"
    )


def text_hint(column: str) -> str:
    """What a reason adds for a value that does not fit its column: the option that keeps it."""
    return f" (--string-columns {column} would keep it as text)"


@dataclass(frozen=True)
class _Rules:
    """What conforming one batch follows besides the staged types."""

    frame: pl.DataFrame  # the batch, for the checks that look at values
    text: frozenset[str]  # paths staged as STRING whatever their values (--string-columns)
    json: frozenset[str]  # paths whose values this batch already holds as JSON text
    all_json_text: bool = False  # every JSON path holds JSON text (rows staged before)


def _inner(path: str, name: str) -> str:
    return f"{path}{SEPARATOR}{name}"


# -- which type each column is staged as in this batch ------------------------------------------


def _target(values: pl.Expr, dtype: pl.DataType, known: FieldType | None, path: str, rules: _Rules) -> FieldType | None:
    """The type `path` is staged as: the known one, widened where this batch needs it, or the
    one its values give (`values`: the column's values, arrays exploded)."""
    if path in rules.text:
        return ColumnType.STRING
    if path in rules.json:
        return ColumnType.JSON
    if known in _TEXT_KINDS and _is_nested(dtype):
        return known
    if isinstance(dtype, pl.Struct):
        return (
            _record_target(values, dtype, known, path, rules)
            if known is None or isinstance(known, RecordType)
            else known
        )
    if isinstance(dtype, (pl.List, pl.Array)):
        if known is not None and not isinstance(known, ArrayType):
            return known
        if _is_nested(dtype.inner) and not isinstance(dtype.inner, pl.Struct):
            return known or ColumnType.JSON
        item = _target(values.explode(), dtype.inner, known.item if known else None, path, rules)
        return known if item is None else ArrayType(item)  # type: ignore[arg-type]
    if known is None:
        kind = scalar_type(dtype)
        if kind is ColumnType.STRING and dtype == pl.String:
            return temporal_type(rules.frame.select(values).to_series()) or kind
        return kind
    if known is ColumnType.INT64 and (dtype.is_float() or dtype.is_decimal()):
        return ColumnType.FLOAT64 if rules.frame.select(_fractional(values).any()).item() else known
    return known


def _record_target(
    values: pl.Expr, dtype: pl.Struct, known: RecordType | None, path: str, rules: _Rules
) -> RecordType | None:
    """A record's fields: the known ones in their order (widened), then the batch's new ones."""
    old = dict(known.fields) if known else {}
    found = {}
    for inner in dtype.fields:
        kind = _target(
            values.struct.field(inner.name), inner.dtype, old.get(inner.name), _inner(path, inner.name), rules
        )
        if kind is not None:
            found[inner.name] = kind
    fields = [(name, found.get(name, kind)) for name, kind in old.items()]
    fields += [(name, kind) for name, kind in found.items() if name not in old]
    return RecordType(tuple(fields)) if fields else None


# -- casting, and finding the values a cast would change ----------------------------------------


def _scalar(value: pl.Expr, dtype: pl.DataType, target: ColumnType) -> pl.Expr:
    """A scalar `value` cast to `target`; values that do not fit become null (see `_changed`)."""
    if dtype == polars_type(target) or dtype == pl.Null:
        return value.cast(polars_type(target))
    if target is ColumnType.STRING:
        return value.cast(pl.String)
    if target is ColumnType.TIMESTAMP and isinstance(dtype, pl.Datetime):
        zoned = value.dt.replace_time_zone("UTC") if dtype.time_zone is None else value.dt.convert_time_zone("UTC")
        return zoned.dt.cast_time_unit("us")
    if dtype == pl.String and target in FROM_TEXT:
        return FROM_TEXT[target](value)
    if dtype.is_numeric() and target in (ColumnType.INT64, ColumnType.FLOAT64):
        return value.cast(polars_type(target), strict=False)
    if target in (ColumnType.TIMESTAMP, ColumnType.DATE):
        return FROM_TEXT[target](value.cast(pl.String))  # a date for a timestamp; anything else fails
    return pl.lit(None, dtype=polars_type(target))  # another kind (true for INT64, 1 for BOOL): never coerced


def _cast(value: pl.Expr, dtype: pl.DataType, target: FieldType, path: str, rules: _Rules) -> pl.Expr:
    """`value` (of `dtype`) as `target`, at any depth; values that do not fit become null."""
    if target is ColumnType.JSON:
        as_text = rules.all_json_text or path in rules.json or dtype == pl.Null
        return value.cast(pl.String) if as_text else json_text(value)
    if dtype == polars_type(target) or dtype == pl.Null:
        return value.cast(polars_type(target))
    if isinstance(target, RecordType):
        if not isinstance(dtype, pl.Struct):
            return pl.lit(None, polars_type(target))
        present = {inner.name: inner.dtype for inner in dtype.fields}
        fields = [
            (
                _cast(value.struct.field(name), present[name], kind, _inner(path, name), rules)
                if name in present
                else pl.lit(None, polars_type(kind))
            ).alias(name)
            for name, kind in target.fields
        ]
        return pl.when(value.is_not_null()).then(pl.struct(fields))
    if isinstance(target, ArrayType):
        if not isinstance(dtype, (pl.List, pl.Array)):
            return pl.lit(None, polars_type(target))
        return value.cast(pl.List(dtype.inner)).list.eval(_cast(pl.element(), dtype.inner, target.item, path, rules))
    if _is_nested(dtype):
        return json_text(value) if target is ColumnType.STRING else pl.lit(None, polars_type(target))
    return _scalar(value, dtype, target)


def restaged(name: str, dtype: pl.DataType, target: FieldType) -> pl.Expr:
    """Column `name` of rows staged before (`dtype`) as the column's type now (`target`, the
    same or wider: a record with fields added since, INT64 widened to FLOAT64)."""
    rules = _Rules(pl.DataFrame(), frozenset(), frozenset(), all_json_text=True)
    return _cast(pl.col(name), dtype, target, name, rules).alias(name)


def _fractional(value: pl.Expr) -> pl.Expr:
    as_float = value.cast(pl.Float64)
    return as_float != as_float.floor()


def _scalar_changed(value: pl.Expr, dtype: pl.DataType, target: ColumnType, cast: pl.Expr | None = None) -> pl.Expr:
    """Where `value` would be lost or changed as `target` (`cast`: the cast, if already made)."""
    lost = value.is_not_null() & (_scalar(value, dtype, target) if cast is None else cast).is_null()
    if target is ColumnType.INT64 and (dtype.is_float() or dtype.is_decimal()):
        lost = lost | _fractional(value)
    if target is ColumnType.FLOAT64 and dtype.is_integer():
        lost = lost | (value > MAX_EXACT_FLOAT_INT) | (value < -MAX_EXACT_FLOAT_INT)
    if target is ColumnType.FLOAT64 and dtype.is_float():
        lost = lost | ~value.is_finite()  # NaN and infinity: HOLD₂'s JSON segments would hold null
    if target is ColumnType.FLOAT64 and dtype.is_decimal():
        lost = lost | (
            canonical_number(value.cast(pl.String)) != canonical_number(value.cast(pl.Float64).cast(pl.String))
        )
    if target is ColumnType.TIMESTAMP and isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns":
        lost = lost | (value.dt.nanosecond() % 1000 != 0)  # BigQuery keeps microseconds
    return lost


def _changed(value: pl.Expr, dtype: pl.DataType, target: FieldType) -> pl.Expr | None:
    """True where a non-null value would be lost or changed by the cast to `target` (None: none can be)."""
    if dtype == pl.Null or target is ColumnType.JSON:
        return None
    if isinstance(target, RecordType):
        if not isinstance(dtype, pl.Struct):
            return value.is_not_null()
        present = {inner.name: inner.dtype for inner in dtype.fields}
        parts = [
            lost
            for name, kind in target.fields
            if name in present and (lost := _changed(value.struct.field(name), present[name], kind)) is not None
        ]
        return pl.any_horizontal(parts).fill_null(False) if parts else None
    if isinstance(target, ArrayType):
        if not isinstance(dtype, (pl.List, pl.Array)):
            return value.is_not_null()
        inner = _changed(pl.element(), dtype.inner, target.item)
        return None if inner is None else value.cast(pl.List(dtype.inner)).list.eval(inner).list.any().fill_null(False)
    if _is_nested(dtype):
        return None if target is ColumnType.STRING else value.is_not_null()
    return _scalar_changed(value, dtype, target) if _may_change(dtype, target) else None


def _may_change(dtype: pl.DataType, target: ColumnType) -> bool:
    """Whether casting a scalar of `dtype` to `target` can lose or change a value."""
    return (
        dtype != pl.Null
        and target is not ColumnType.JSON
        and (dtype.is_float() or not (dtype == polars_type(target) or target is ColumnType.STRING))
    )


def _reason(name: str, dtype: pl.DataType, target: FieldType) -> pl.Expr:
    value = pl.col(name)
    got = (json_text(value) if _is_nested(dtype) else value.cast(pl.String)).str.slice(0, 100)
    return pl.format(f"field '{name}': expected {target.value}, got {{}}{text_hint(name)}", got)


def _utf8(raw: bytes | None) -> str | None:
    try:
        return None if raw is None else raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _bytes_as_text(frame: pl.DataFrame, passthrough: frozenset[str]) -> tuple[pl.DataFrame, list[pl.Expr]]:
    """Binary columns (Parquet) as text, and a reason for each record whose bytes are not UTF-8."""
    texts, reasons = [], []
    for name, dtype in frame.schema.items():
        if dtype == pl.Binary and name not in passthrough:
            text = pl.Series(name, [_utf8(raw) for raw in frame[name]], dtype=pl.String)
            not_utf8 = frame[name].is_not_null() & text.is_null()
            reason = f"field '{name}': expected STRING, got bytes that are not UTF-8"
            reasons.append(pl.when(pl.lit(not_utf8)).then(pl.lit(reason)))
            texts.append(text)
    return (frame.with_columns(texts), reasons) if texts else (frame, [])


@dataclass
class Conformed:
    """A batch cast to the staged schema, the rows that could not be, and the columns the staged
    table must gain or widen (`new_columns`: name -> its type from now on)."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    new_columns: Schema = field(default_factory=dict)


def conform(
    frame: pl.DataFrame,
    known: Schema,
    passthrough: frozenset[str] = frozenset(),
    text: frozenset[str] = frozenset(),
    json: frozenset[str] = frozenset(),
    declared: Schema | None = None,
) -> Conformed:
    """Cast `frame` to `known` (widened where safe, `text` paths as STRING, `json` paths already
    JSON text), adding new columns (typed as `declared` says, else from their values) and
    rejecting the rows whose values would change."""
    frame, reasons = _bytes_as_text(frame, passthrough)
    rules = _Rules(frame, text, json)
    casts: list[pl.Expr] = []
    new_columns: Schema = {}
    made: dict[str, pl.Expr] = {}  # scalar casts that need checking: made once, then compared with
    for name, dtype in frame.schema.items():
        if name in passthrough:
            casts.append(pl.col(name))
            continue
        staged = known.get(name)
        guide = staged if staged is not None else (declared or {}).get(name)
        target = _target(pl.col(name), dtype, guide, name, rules)
        if target is None:
            continue  # all null and not yet typed: nothing to stage
        if staged != target:
            new_columns[name] = target
        cast = _cast(pl.col(name), dtype, target, name, rules)
        if isinstance(target, ColumnType) and not _is_nested(dtype) and _may_change(dtype, target):
            made[name], cast = cast, pl.col(f"{_MADE}{name}")
            changed: pl.Expr | None = _scalar_changed(pl.col(name), dtype, target, cast)
        else:
            changed = _changed(pl.col(name), dtype, target)
        if changed is not None:
            reasons.append(pl.when(changed).then(_reason(name, dtype, target)))
        casts.append(cast.alias(name))
    frame = frame.with_columns(cast.alias(f"{_MADE}{name}") for name, cast in made.items())
    if not reasons:
        return Conformed(frame.select(casts), frame.clear().drop(f"{_MADE}{name}" for name in made), new_columns)
    flagged = frame.with_columns(pl.coalesce(reasons).alias(QUARANTINE_REASON))
    bad_rows = pl.col(QUARANTINE_REASON).is_not_null()
    return Conformed(
        frame=flagged.filter(~bad_rows).select(casts),
        rejected=flagged.filter(bad_rows).drop(f"{_MADE}{name}" for name in made),
        new_columns=new_columns,
    )
