"""Column types shared by HOLD₂ and the warehouses, and conforming a batch to them.

The first batch that carries a column decides its type; later batches are cast to it. A
value reaches HOLD₂ unchanged in kind and value, or its record goes to quarantine with the
reason: it fits the column's type exactly (`"42"` fits INT64, `"042"` and `true` do not), or
the column widens safely (INT64 -> FLOAT64 when a batch brings fractions, anything -> STRING
for the columns the user names with --string-columns). A new column is added; an all-null
column waits for a value.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from enum import Enum

import polars as pl

from bqhold.tasks.core.records import QUARANTINE_REASON


class ColumnType(str, Enum):
    """The warehouse-neutral type of a staged column."""

    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    FLOAT64_ARRAY = "ARRAY<FLOAT64>"  # a vector (an agent's embedding); BigQuery: REPEATED FLOAT64


Schema = dict[str, ColumnType]

POLARS_TYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STRING: pl.String(),
    ColumnType.INT64: pl.Int64(),
    ColumnType.FLOAT64: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.TIMESTAMP: pl.Datetime("us", "UTC"),
    ColumnType.DATE: pl.Date(),
    ColumnType.FLOAT64_ARRAY: pl.List(pl.Float64()),
}
# The widest integer a FLOAT64 holds exactly (2**53): beyond it, neighbouring integers merge.
MAX_EXACT_FLOAT_INT = 2**53


def column_type(dtype: pl.DataType) -> ColumnType | None:
    """The staged type for a polars dtype; None for an all-null column."""
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
    if isinstance(dtype, pl.List) and dtype.inner.is_numeric():
        return ColumnType.FLOAT64_ARRAY  # only agents' outputs: flatten keeps input lists as JSON text
    return ColumnType.STRING


def widens(old: ColumnType, new: ColumnType) -> bool:
    """Whether a column of type `old` can become `new` without changing a value it holds
    (INT64 -> FLOAT64 only up to 2**53, which whoever widens must check)."""
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


# -- text that is a number -----------------------------------------------------------------

# A plain integer: no sign but `-`, no leading zero (`0` itself excepted), no `-0`.
_INT = r"^(0|-?[1-9][0-9]*)$"
# A plain number: an integer as above, or a decimal with a fraction and/or an exponent.
_NUMBER = _INT + r"|^-?(0|[1-9][0-9]*)(\.[0-9]+([eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$"
_BOOL = r"(?i)^(true|false)$"


def _canonical(text: pl.Expr) -> pl.Expr:
    """A plain number's value as text that is equal for equal values (`1.50` and `15e-1` ->
    `15e1`): significant digits, then where the decimal point goes (string operations only,
    no regular expression: this runs on every value of a CSV column that looks like floats)."""
    parts = text.str.to_lowercase().str.split_exact("e", 1)
    mantissa, shift = parts.struct.field("field_0"), parts.struct.field("field_1").cast(pl.Int64).fill_null(0)
    unsigned = mantissa.str.strip_chars_start("-")
    digits = unsigned.str.replace(".", "", literal=True)
    length = digits.str.len_chars().cast(pl.Int64)
    point = unsigned.str.find(".", literal=True).cast(pl.Int64).fill_null(length)
    leading = length - digits.str.strip_chars_start("0").str.len_chars().cast(pl.Int64)
    significant = digits.str.strip_chars("0")
    sign = pl.when(mantissa.str.starts_with("-")).then(pl.lit("-")).otherwise(pl.lit(""))
    number = pl.concat_str(sign, significant, pl.lit("e"), (point - leading + shift).cast(pl.String))
    return pl.when(significant == "").then(pl.lit("0")).otherwise(number)


def int_text(text: pl.Expr) -> pl.Expr:
    """Text as INT64 where it is a plain integer that fits (`42`, `-7`); else null (`042`, `+7`, `1e3`)."""
    return pl.when(text.str.contains(_INT)).then(text.cast(pl.Int64, strict=False))


def _plainly_exact(text: pl.Expr, value: pl.Expr) -> pl.Expr:
    """Text whose FLOAT64 is surely the same number without comparing digits: the float's own
    shortest spelling (what most writers produce), or a decimal of at most 15 characters."""
    return (text == value.cast(pl.String)) | ((text.str.len_bytes() <= 15) & ~text.str.contains("[eE]"))


def _same_number(text: pl.Expr, value: pl.Expr) -> pl.Expr:
    return _canonical(text) == _canonical(value.cast(pl.String))


def float_text(text: pl.Expr) -> pl.Expr:
    """Text as FLOAT64 where it is a plain number FLOAT64 holds without losing a digit (`1.50`,
    `2`, `1e-3`); else null (`007`, `3.141592653589793238`, `1e400`, `NaN`)."""
    value = text.cast(pl.Float64, strict=False)
    exact = value.is_finite() & (_plainly_exact(text, value) | _same_number(text, value))
    return pl.when(text.str.contains(_NUMBER) & exact).then(value)


def bool_text(text: pl.Expr) -> pl.Expr:
    """Text as BOOL where it says `true` or `false` (any case); else null."""
    lowered = text.str.to_lowercase()
    return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)


def _typed(values: pl.Series) -> pl.Series | None:
    """A text column as INT64, FLOAT64 or BOOL when every value in it is one by the rules above."""
    if values.null_count() == values.len():
        return None
    text, frame = pl.col("t"), values.to_frame("t")
    for pattern, parse in ((_INT, int_text), (_BOOL, bool_text)):
        if frame.select(text.str.contains(pattern).all()).item():
            typed = frame.select(parse(text)).to_series()
            return typed.alias(values.name) if typed.null_count() == values.null_count() else None
    if not frame.select(text.str.contains(_NUMBER).all()).item():
        return None
    floats = frame.with_columns(value=text.cast(pl.Float64, strict=False))
    value = pl.col("value")
    # Compare digits only where the cheap checks cannot tell: on few values, if any.
    doubtful = floats.filter(~value.is_finite() | ~_plainly_exact(text, value))
    exact = doubtful.is_empty() or doubtful.select((value.is_finite() & _same_number(text, value)).all()).item()
    return floats["value"].alias(values.name) if exact else None


def type_text_columns(frame: pl.DataFrame, keep_text: Collection[str] = ()) -> pl.DataFrame:
    """Give each text column of `frame` (a CSV batch: all text) the type every value in it has:
    INT64, FLOAT64 or BOOL by the rules above, else it stays text, as `keep_text` columns do."""
    typed = []
    for name, dtype in frame.schema.items():
        if dtype == pl.String and name not in keep_text and (column := _typed(frame[name])) is not None:
            typed.append(column.alias(name))
    return frame.with_columns(typed) if typed else frame


# -- casting a batch to the staged types --------------------------------------------------

_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text (`T` or space, optional fraction and offset, or a date) as a UTC timestamp."""
    return pl.coalesce(
        [text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us") for fmt in _TIMESTAMP_FORMATS]
    )


_FROM_TEXT = {
    ColumnType.INT64: int_text,
    ColumnType.FLOAT64: float_text,
    ColumnType.BOOL: bool_text,
    ColumnType.TIMESTAMP: parse_timestamp,
    ColumnType.DATE: lambda text: text.str.to_date("%Y-%m-%d", strict=False),
}


def _to_type(name: str, dtype: pl.DataType, target: ColumnType) -> pl.Expr:
    """`name` cast to `target`; values that do not fit become null (see `_changed`)."""
    column = pl.col(name)
    if dtype == POLARS_TYPES[target] or dtype == pl.Null:
        return column.cast(POLARS_TYPES[target])
    if target is ColumnType.STRING:
        return column.cast(pl.String)
    if target is ColumnType.FLOAT64_ARRAY:
        return (
            column.cast(POLARS_TYPES[target], strict=False)
            if isinstance(dtype, pl.List)
            else pl.lit(None, POLARS_TYPES[target])
        )
    if target is ColumnType.TIMESTAMP and isinstance(dtype, pl.Datetime):
        zoned = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column.dt.convert_time_zone("UTC")
        return zoned.dt.cast_time_unit("us")
    if dtype == pl.String:
        return _FROM_TEXT[target](column)
    if dtype.is_numeric() and target in (ColumnType.INT64, ColumnType.FLOAT64):
        return column.cast(POLARS_TYPES[target], strict=False)
    if target in (ColumnType.TIMESTAMP, ColumnType.DATE):
        return _FROM_TEXT[target](column.cast(pl.String))  # a date for a timestamp; anything else fails
    return pl.lit(None, dtype=POLARS_TYPES[target])  # another kind (true for INT64, 1 for BOOL): never coerced


def _fractional(value: pl.Expr) -> pl.Expr:
    as_float = value.cast(pl.Float64)
    return as_float != as_float.floor()


def _changed(name: str, dtype: pl.DataType, target: ColumnType) -> pl.Expr:
    """True where a non-null value would be lost or changed by the cast to `target`."""
    value = pl.col(name)
    lost = value.is_not_null() & _to_type(name, dtype, target).is_null()
    if target is ColumnType.INT64 and (dtype.is_float() or dtype.is_decimal()):
        lost = lost | _fractional(value)
    if target is ColumnType.FLOAT64 and dtype.is_integer():
        lost = lost | (value > MAX_EXACT_FLOAT_INT) | (value < -MAX_EXACT_FLOAT_INT)
    if target is ColumnType.FLOAT64 and dtype.is_float():
        lost = lost | ~value.is_finite()  # NaN and infinity: HOLD₂'s JSON segments would hold null
    if target is ColumnType.FLOAT64 and dtype.is_decimal():
        lost = lost | (_canonical(value.cast(pl.String)) != _canonical(value.cast(pl.Float64).cast(pl.String)))
    if target is ColumnType.TIMESTAMP and isinstance(dtype, pl.Datetime) and dtype.time_unit == "ns":
        lost = lost | (value.dt.nanosecond() % 1000 != 0)  # BigQuery keeps microseconds
    return lost


def _reason(name: str, target: ColumnType) -> pl.Expr:
    got = pl.col(name).cast(pl.String).str.slice(0, 100)
    return pl.format(f"field '{name}': expected {target.value}, got {{}}{text_hint(name)}", got)


def text_hint(column: str) -> str:
    """What a reason adds for a value that does not fit its column: the option that keeps it."""
    return f" (--string-columns {column} would keep it as text)"


def _target(
    name: str, dtype: pl.DataType, known: ColumnType | None, text: frozenset[str], frame: pl.DataFrame
) -> ColumnType | None:
    """The type `name` is staged as in this batch: the known one, widened where needed."""
    if name in text:
        return ColumnType.STRING
    if known is None:
        return column_type(dtype)
    if known is ColumnType.INT64 and (dtype.is_float() or dtype.is_decimal()):
        return ColumnType.FLOAT64 if frame.select(_fractional(pl.col(name)).any()).item() else known
    return known


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
) -> Conformed:
    """Cast `frame` to `known` (widened where safe, `text` columns as STRING), adding new columns
    and rejecting the rows whose values would change."""
    frame, reasons = _bytes_as_text(frame, passthrough)
    casts: list[pl.Expr] = []
    new_columns: Schema = {}
    for name, dtype in frame.schema.items():
        if name in passthrough:
            casts.append(pl.col(name))
            continue
        target = _target(name, dtype, known.get(name), text, frame)
        if target is None:
            continue  # all null and not yet typed: nothing to stage
        if known.get(name) is not target:
            new_columns[name] = target
        if dtype.is_float() or not (dtype == POLARS_TYPES[target] or dtype == pl.Null or target is ColumnType.STRING):
            reasons.append(pl.when(_changed(name, dtype, target)).then(_reason(name, target)))
        casts.append(_to_type(name, dtype, target).alias(name))
    if not reasons:
        return Conformed(frame.select(casts), frame.clear(), new_columns)
    flagged = frame.with_columns(pl.coalesce(reasons).alias(QUARANTINE_REASON))
    bad_rows = pl.col(QUARANTINE_REASON).is_not_null()
    return Conformed(
        frame=flagged.filter(~bad_rows).select(casts),
        rejected=flagged.filter(bad_rows),
        new_columns=new_columns,
    )
