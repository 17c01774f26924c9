"""The type of a staged column: a scalar, an array of one type, or a record of named fields.

One model for HOLD₂ and both warehouses: `STRING`, `INT64`, `FLOAT64`, `BOOL`, `TIMESTAMP`,
`DATE`, `JSON`; `ARRAY<T>` (BigQuery: a REPEATED field; DuckDB: `T[]`) of a scalar or a record,
never of an array (BigQuery has none; such a value is staged as JSON); `STRUCT<a T, ...>`
(BigQuery: a RECORD; DuckDB: `STRUCT(...)`). A type's `value` is its text in BigQuery's
standard SQL, which is how HOLD₂ records it and how messages name it; `parse_type` reads it back.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import polars as pl


class ColumnType(str, Enum):
    """A scalar type."""

    STRING = "STRING"
    INT64 = "INT64"
    FLOAT64 = "FLOAT64"
    BOOL = "BOOL"
    TIMESTAMP = "TIMESTAMP"
    DATE = "DATE"
    JSON = "JSON"  # JSON text, queryable as JSON in BigQuery and DuckDB


@dataclass(frozen=True)
class ArrayType:
    """Values of one type, in order (a JSON array)."""

    item: ColumnType | RecordType

    @property
    def value(self) -> str:
        return f"ARRAY<{self.item.value}>"


@dataclass(frozen=True)
class RecordType:
    """Named fields, in order (a JSON object)."""

    fields: tuple[tuple[str, FieldType], ...]

    @property
    def value(self) -> str:
        return "STRUCT<" + ", ".join(f"{name} {kind.value}" for name, kind in self.fields) + ">"

    def get(self, name: str) -> FieldType | None:
        """The type of field `name`, if the record has it."""
        return next((kind for field, kind in self.fields if field == name), None)


FieldType = ColumnType | ArrayType | RecordType
Schema = dict[str, FieldType]
FLOAT64_ARRAY = ArrayType(ColumnType.FLOAT64)  # a vector, such as an agent's embedding

_POLARS_SCALARS: dict[ColumnType, pl.DataType] = {
    ColumnType.STRING: pl.String(),
    ColumnType.INT64: pl.Int64(),
    ColumnType.FLOAT64: pl.Float64(),
    ColumnType.BOOL: pl.Boolean(),
    ColumnType.TIMESTAMP: pl.Datetime("us", "UTC"),
    ColumnType.DATE: pl.Date(),
    ColumnType.JSON: pl.String(),
}


def polars_type(kind: FieldType) -> pl.DataType:
    """The polars dtype a column of `kind` is held in."""
    if isinstance(kind, ArrayType):
        return pl.List(polars_type(kind.item))
    if isinstance(kind, RecordType):
        return pl.Struct([pl.Field(name, polars_type(inner)) for name, inner in kind.fields])
    return _POLARS_SCALARS[kind]


def grows(old: FieldType, new: FieldType, scalar: Callable[[ColumnType, FieldType], bool]) -> bool:
    """Whether `new` keeps all of `old`: its records keep every field (more may follow) and
    arrays their items, each growing alike; where `old` is a scalar, `scalar(old, new)` says."""
    if old == new:
        return True
    if isinstance(old, RecordType) and isinstance(new, RecordType):
        kept = dict(new.fields)
        return all(name in kept and grows(kind, kept[name], scalar) for name, kind in old.fields)
    if isinstance(old, ArrayType) and isinstance(new, ArrayType):
        return grows(old.item, new.item, scalar)
    return isinstance(old, ColumnType) and scalar(old, new)


def only_adds_fields(old: FieldType, new: FieldType) -> bool:
    """Whether `new` is `old` with fields added to its records (at any depth), nothing else changed."""
    return grows(old, new, lambda _old, _new: False)


# -- reading a type's text back -------------------------------------------------------------

_TOKEN = re.compile(r"\s*(ARRAY<|STRUCT<|>|,|[^\s<>,]+)")


def parse_type(text: str) -> FieldType:
    """The type whose `value` is `text` (`INT64`, `ARRAY<FLOAT64>`, `STRUCT<a INT64, b ARRAY<STRING>>`)."""
    tokens = [match.group(1) for match in _TOKEN.finditer(text)]
    kind, rest = _parse(tokens)
    if rest:
        raise ValueError(f"unexpected {' '.join(rest)!r} after the type in {text!r}")
    return kind


def _parse(tokens: list[str]) -> tuple[FieldType, list[str]]:
    head, rest = tokens[0], tokens[1:]
    if head == "ARRAY<":
        item, rest = _parse(rest)
        if isinstance(item, ArrayType):
            raise ValueError("an ARRAY cannot hold ARRAYs")
        return ArrayType(item), _expect(">", rest)
    if head == "STRUCT<":
        fields: list[tuple[str, FieldType]] = []
        while rest and rest[0] != ">":
            name, (inner, rest) = rest[0], _parse(rest[1:])
            fields.append((name, inner))
            if rest and rest[0] == ",":
                rest = rest[1:]
        return RecordType(tuple(fields)), _expect(">", rest)
    return ColumnType(head), rest


def _expect(token: str, rest: list[str]) -> list[str]:
    if not rest or rest[0] != token:
        raise ValueError(f"expected {token!r}")
    return rest[1:]
