"""What text means when a column is typed from it: numbers, booleans, dates and timestamps.

A CSV column is all text; a JSON string may hold a date. Text becomes INT64, FLOAT64 or BOOL
only when the value is kept exactly (`"42"` is 42, `"042"` stays text: a leading zero is
meaning, not a number), and DATE or TIMESTAMP only in ISO 8601 form (see `TEMPORAL_RULE`).
"""

from __future__ import annotations

from collections.abc import Collection

import polars as pl

from bqhold.tasks.core.column_types import ColumnType

# The widest integer a FLOAT64 holds exactly (2**53): beyond it, neighbouring integers merge.
MAX_EXACT_FLOAT_INT = 2**53

# -- text that is a number -----------------------------------------------------------------

# A plain integer: no sign but `-`, no leading zero (`0` itself excepted), no `-0`.
_INT = r"^(0|-?[1-9][0-9]*)$"
# A plain number: an integer as above, or a decimal with a fraction and/or an exponent.
_NUMBER = _INT + r"|^-?(0|[1-9][0-9]*)(\.[0-9]+([eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)$"
_BOOL = r"(?i)^(true|false)$"


def canonical_number(text: pl.Expr) -> pl.Expr:
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
    return canonical_number(text) == canonical_number(value.cast(pl.String))


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


_ISO_FORMAT = "%Y-%m-%dT%H:%M:%S%.f%#z"


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text (`T` or space, optional fraction and offset, or a date) as a UTC timestamp.

    Each form is first written as the one full form (`T`, a time, an offset: `Z` if none), with
    string operations, then parsed once: a parse per form would read every value once per form."""
    dated = pl.when(text.str.len_bytes() == 10).then(text + "T00:00:00")
    joined = dated.otherwise(text.str.slice(0, 10) + "T" + text.str.slice(11))
    zoned = pl.when(joined.str.slice(19).str.contains("[Zz+-]")).then(joined).otherwise(joined + "Z")
    return zoned.str.to_datetime(_ISO_FORMAT, strict=False, time_zone="UTC", time_unit="us")


FROM_TEXT = {
    ColumnType.INT64: int_text,
    ColumnType.FLOAT64: float_text,
    ColumnType.BOOL: bool_text,
    ColumnType.TIMESTAMP: parse_timestamp,
    ColumnType.DATE: lambda text: text.str.to_date("%Y-%m-%d", strict=False),
}

# A text column becomes DATE or TIMESTAMP when every value of it in the batch that first brings
# values for it is in one ISO 8601 form; the first batch decides, as for numbers.
TEMPORAL_RULE = (
    "DATE when every value is YYYY-MM-DD; TIMESTAMP when every value is YYYY-MM-DD[T ]HH:MM:SS[.ffffff]"
    " with Z, ±HH:MM or no offset (then UTC)"
)
_ISO_DATE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
_ISO_TIMESTAMP = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:?[0-9]{2})?$"


def temporal_type(values: pl.Series) -> ColumnType | None:
    """DATE or TIMESTAMP when every (non-null, at least one) text value in `values` is one, by
    `TEMPORAL_RULE` and a real date (`2026-02-30` is not); else None."""
    present = values.drop_nulls()
    if present.is_empty():
        return None
    frame, text = present.to_frame("t"), pl.col("t")
    for pattern, kind in ((_ISO_DATE, ColumnType.DATE), (_ISO_TIMESTAMP, ColumnType.TIMESTAMP)):
        if frame.select(text.str.contains(pattern).all()).item():
            parsed = frame.select(FROM_TEXT[kind](text).is_not_null().all()).item()
            return kind if parsed else None
    return None
