"""Column types shared by HOLD₂ and the warehouses, and conforming a batch to them.

The first batch that carries a column decides its type; later batches are cast to it.
A value that cannot take that type (`"abc"` for an INT64 column, `1.5` for INT64) sends
its record to quarantine; a new column is added; an all-null column waits for a value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

import polars as pl

from tasks.core.records import QUARANTINE_REASON


class ColumnType(str, Enum):
    """The warehouse-neutral type of a staged column."""

    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"


Schema = dict[str, ColumnType]

POLARS_TYPES: dict[ColumnType, pl.DataType] = {
    ColumnType.STRING: pl.String(),
    ColumnType.INT64: pl.Int64(),
    ColumnType.FLOAT64: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.TIMESTAMP: pl.Datetime("us", "UTC"),
    ColumnType.DATE: pl.Date(),
}


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
    return ColumnType.STRING


_TIMESTAMP_FORMATS = (
    "%Y-%m-%dT%H:%M:%S%.f%#z",
    "%Y-%m-%d %H:%M:%S%.f%#z",
    "%Y-%m-%dT%H:%M:%S%.f",
    "%Y-%m-%d %H:%M:%S%.f",
    "%Y-%m-%d",
)
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def parse_timestamp(text: pl.Expr) -> pl.Expr:
    """ISO 8601 text (`T` or space, optional fraction and offset, or a date) as a UTC timestamp."""
    return pl.coalesce(
        [text.str.to_datetime(fmt, strict=False, time_zone="UTC", time_unit="us") for fmt in _TIMESTAMP_FORMATS]
    )


def _from_text(text: pl.Expr, target: ColumnType) -> pl.Expr:
    if target is ColumnType.TIMESTAMP:
        return parse_timestamp(text)
    if target is ColumnType.DATE:
        return text.str.to_date("%Y-%m-%d", strict=False)
    if target is ColumnType.BOOL:
        lowered = text.str.to_lowercase()
        return pl.when(lowered.is_in(_TRUE)).then(True).when(lowered.is_in(_FALSE)).then(False)
    return text.cast(POLARS_TYPES[target], strict=False)


def _to_type(name: str, dtype: pl.DataType, target: ColumnType) -> pl.Expr:
    """`name` cast to `target`; values that do not fit become null (see `_bad_values`)."""
    column = pl.col(name)
    if dtype == POLARS_TYPES[target]:
        return column
    if target is ColumnType.TIMESTAMP and isinstance(dtype, pl.Datetime):
        zoned = column.dt.replace_time_zone("UTC") if dtype.time_zone is None else column.dt.convert_time_zone("UTC")
        return zoned.dt.cast_time_unit("us")
    if dtype.is_numeric() and target is ColumnType.BOOL:
        return pl.when(column == 1).then(True).when(column == 0).then(False)
    if dtype in (pl.Null, pl.Boolean) or (
        dtype.is_numeric() and target is not ColumnType.TIMESTAMP and target is not ColumnType.DATE
    ):
        return column.cast(POLARS_TYPES[target], strict=False)
    if target is ColumnType.STRING:
        return column.cast(pl.String)
    # Anything else goes through its text, so it cannot silently become a different value:
    # it fits, or the row is rejected.
    return _from_text(column.cast(pl.String), target)


def _bad_values(name: str, dtype: pl.DataType, target: ColumnType) -> pl.Expr:
    """True where a non-null value is lost or changed by the cast to `target`."""
    cast = _to_type(name, dtype, target)
    lost = pl.col(name).is_not_null() & cast.is_null()
    if target is ColumnType.INT64 and dtype.is_float():
        lost = lost | (pl.col(name).is_not_null() & (pl.col(name) != pl.col(name).floor()))
    if dtype == pl.Boolean and target in (ColumnType.INT64, ColumnType.FLOAT64):
        lost = pl.col(name).is_not_null()  # true is not a number
    return lost


@dataclass
class Conformed:
    """A batch cast to the staged schema, the rows that could not be, and new columns."""

    frame: pl.DataFrame
    rejected: pl.DataFrame
    new_columns: Schema = field(default_factory=dict)


def conform(frame: pl.DataFrame, known: Schema, passthrough: frozenset[str] = frozenset()) -> Conformed:
    """Cast `frame` to `known`, adding new columns and rejecting rows with clashing values."""
    casts: list[pl.Expr] = []
    new_columns: Schema = {}
    reasons: list[pl.Expr] = []
    for name, dtype in frame.schema.items():
        if name in passthrough:
            casts.append(pl.col(name))
            continue
        target = known.get(name) or column_type(dtype)
        if target is None:
            continue  # all null and not yet typed: nothing to stage
        if name not in known:
            new_columns[name] = target
        safe = dtype == POLARS_TYPES[target] or dtype == pl.Null or target is ColumnType.STRING
        widening = target is ColumnType.FLOAT64 and dtype.is_integer()
        if not (safe or widening):
            bad = _bad_values(name, dtype, target)
            reasons.append(
                pl.when(bad).then(
                    pl.format(f"field '{name}': expected {target.value}, got {{}}", pl.col(name).cast(pl.String))
                )
            )
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
