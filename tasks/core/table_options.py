"""How a warehouse table is laid out: partitioning, clustering and descriptions.

`--partition-by` takes
- `COLUMN` or `COLUMN:DAY|HOUR|MONTH|YEAR`: time-unit partitioning on a TIMESTAMP or DATE column
  (DAY by default);
- `_PARTITIONTIME` or `_PARTITIONTIME:DAY|HOUR|MONTH|YEAR`: ingestion-time partitioning;
- `COLUMN:RANGE(START,END,INTERVAL)`: integer-range partitioning on an INT64 column.

`--cluster-by A,B` names up to four top-level columns. A table is created with these and its
descriptions on its first load; on a later load, what is asked must be what the table has
(BigQuery cannot change a table's partitioning, and bqhold does not change its clustering
behind the user's back): `layout_problem` says what differs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from bqhold.tasks.core.column_types import ColumnType, FieldType, Schema
from bqhold.tasks.core.errors import ConfigError

TimeUnit = Literal["HOUR", "DAY", "MONTH", "YEAR"]
INGESTION_TIME = "_PARTITIONTIME"
MAX_CLUSTER_COLUMNS = 4  # BigQuery's limit
_UNITS = ("HOUR", "DAY", "MONTH", "YEAR")
_RANGE = re.compile(r"(?i)range\((-?\d+),(-?\d+),(\d+)\)")


@dataclass(frozen=True)
class Partitioning:
    """One partitioning of a table: by a column's time unit, by ingestion time, or by integer range."""

    column: str | None  # None: ingestion time
    unit: TimeUnit | None = "DAY"  # None: an integer range
    start: int = 0
    end: int = 0
    interval: int = 0

    def describe(self) -> str:
        """As --partition-by spells it."""
        name = self.column or INGESTION_TIME
        if self.unit is None:
            return f"{name}:RANGE({self.start},{self.end},{self.interval})"
        return f"{name}:{self.unit}"


@dataclass(frozen=True)
class TableLayout:
    """What a table is created with, beyond its columns."""

    partitioning: Partitioning | None = None
    clustering: tuple[str, ...] = ()
    description: str | None = None
    column_descriptions: dict[str, str] = field(default_factory=dict)
    asked: bool = True  # by the user (options, block): an existing table must have it; else only a new one gets it


def table_layout(
    partition_by: str | None,
    cluster_by: str | None,
    description: str | None = None,
    column_descriptions: dict[str, str] | None = None,
    asked: bool = True,
) -> TableLayout:
    """The layout the options (--partition-by, --cluster-by) or a pipeline ask for (`asked`: by
    the user, who expects an existing table to have it), with a pipeline's descriptions."""
    return TableLayout(
        parse_partitioning(partition_by),
        parse_clustering(cluster_by),
        description,
        dict(column_descriptions or {}),
        asked,
    )


def parse_partitioning(spec: str | None) -> Partitioning | None:
    """The partitioning `--partition-by` asks for (None: none), or a ConfigError saying the forms."""
    if not spec:
        return None
    column, _, rest = spec.replace(" ", "").partition(":")
    forms = "COLUMN[:DAY|HOUR|MONTH|YEAR], _PARTITIONTIME[:UNIT] or COLUMN:RANGE(START,END,INTERVAL)"
    if not column:
        raise ConfigError(f"--partition-by {spec!r} names no column; use {forms}")
    target = None if column.upper() == INGESTION_TIME else column
    if rest.upper() in ("", *_UNITS):
        return Partitioning(target, rest.upper() or "DAY")  # type: ignore[arg-type]
    bounds = _RANGE.fullmatch(rest)
    if bounds and target is not None:
        start, end, interval = (int(part) for part in bounds.groups())
        if end > start and interval > 0:
            return Partitioning(target, None, start, end, interval)
    raise ConfigError(f"--partition-by {spec!r} is not one of {forms}")


def parse_clustering(spec: str | None) -> tuple[str, ...]:
    """The columns `--cluster-by A,B` names, at most four."""
    columns = tuple(part.strip() for part in (spec or "").split(",") if part.strip())
    if len(columns) > MAX_CLUSTER_COLUMNS:
        raise ConfigError(
            f"--cluster-by names {len(columns)} columns; BigQuery clusters by {MAX_CLUSTER_COLUMNS} at most"
        )
    return columns


_PARTITION_TYPES: dict[bool, tuple[FieldType, ...]] = {
    True: (ColumnType.TIMESTAMP, ColumnType.DATE),  # a time unit
    False: (ColumnType.INT64,),  # an integer range
}
_CLUSTER_TYPES = (
    ColumnType.STRING,
    ColumnType.INT64,
    ColumnType.BOOL,
    ColumnType.TIMESTAMP,
    ColumnType.DATE,
)


def check_layout(layout: TableLayout, schema: Schema, table: str) -> None:
    """A ConfigError when the columns partitioning or clustering names are not in `schema` (the
    staged columns) with a type they can be partitioned or clustered by."""
    part = layout.partitioning
    if part is not None and part.column is not None:
        kinds = _PARTITION_TYPES[part.unit is not None]
        kind = schema.get(part.column)
        if kind not in kinds:
            got = "no such column" if kind is None else f"it is {kind.value}"
            wanted = " or ".join(k.value for k in kinds)
            raise ConfigError(
                f"--partition-by {part.describe()}: column {part.column!r} of table {table} must be {wanted} ({got})"
            )
    for column in layout.clustering:
        kind = schema.get(column)
        if kind not in _CLUSTER_TYPES:
            got = "no such column" if kind is None else f"it is {kind.value}"
            raise ConfigError(f"--cluster-by {column}: table {table} cannot be clustered by it ({got})")


def layout_problem(asked: TableLayout, found: TableLayout, table: str) -> str | None:
    """What differs between the partitioning and clustering asked for and the existing table's
    (only what the user asked is compared: a table partitioned by its owner may be loaded
    without --partition-by, and one created before a pipeline laid its tables out is loaded as it
    is), as one line naming the option; None when they agree."""
    if not asked.asked:
        return None
    if asked.partitioning is not None and asked.partitioning != found.partitioning:
        has = found.partitioning.describe() if found.partitioning else "not partitioned"
        return (
            f"table {table} is {has if not found.partitioning else 'partitioned by ' + has}, --partition-by asks "
            f"{asked.partitioning.describe()}; BigQuery cannot change a table's partitioning: load into another "
            "--table, or recreate the table"
        )
    if asked.clustering and asked.clustering != found.clustering:
        has = ",".join(found.clustering) or "no columns"
        return (
            f"table {table} is clustered by {has}, --cluster-by asks {','.join(asked.clustering)}; change the "
            "table's clustering yourself (bq update --clustering_fields), or ask for what it has"
        )
    return None
