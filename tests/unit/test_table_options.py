"""--partition-by, --cluster-by and the write modes' pure parts: what they accept, what they refuse, in one line."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.column_types import ColumnType, parse_type
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.table_options import (
    Partitioning,
    TableLayout,
    check_layout,
    layout_problem,
    parse_clustering,
    parse_partitioning,
)
from bqhold.tasks.core.write_modes import key_path, staging_table

SCHEMA = {
    "id": ColumnType.INT64,
    "at": ColumnType.TIMESTAMP,
    "day": ColumnType.DATE,
    "total": ColumnType.FLOAT64,
    "user": parse_type("STRUCT<id INT64, meta JSON>"),
    "user__email": ColumnType.STRING,
}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("at", Partitioning("at", "DAY")),
        ("at:month", Partitioning("at", "MONTH")),
        ("_PARTITIONTIME", Partitioning(None, "DAY")),
        ("_partitiontime:HOUR", Partitioning(None, "HOUR")),
        ("id:RANGE(0, 1000000, 1000)", Partitioning("id", None, 0, 1_000_000, 1000)),
        ("", None),
        (None, None),
    ],
)
def test_partition_specs(spec, expected):
    assert parse_partitioning(spec) == expected


@pytest.mark.parametrize(
    "spec", ["at:WEEK", ":DAY", "id:RANGE(10,0,5)", "id:RANGE(0,10,0)", "_PARTITIONTIME:RANGE(0,9,1)"]
)
def test_partition_specs_that_are_none_name_the_forms(spec):
    with pytest.raises(ConfigError, match=r"--partition-by .* COLUMN\[:DAY\|HOUR\|MONTH\|YEAR\]"):
        parse_partitioning(spec)


def test_clustering_takes_up_to_four_columns():
    assert parse_clustering(" a, b ,c,d") == ("a", "b", "c", "d")
    with pytest.raises(ConfigError, match="clusters by 4 at most"):
        parse_clustering("a,b,c,d,e")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        (
            TableLayout(Partitioning("total", "DAY")),
            "column 'total' of table t must be TIMESTAMP or DATE (it is FLOAT64)",
        ),
        (TableLayout(Partitioning("at", None, 0, 9, 1)), "column 'at' of table t must be INT64 (it is TIMESTAMP)"),
        (
            TableLayout(Partitioning("gone", "DAY")),
            "column 'gone' of table t must be TIMESTAMP or DATE (no such column)",
        ),
        (TableLayout(clustering=("user",)), "--cluster-by user: table t cannot be clustered by it (it is STRUCT"),
    ],
)
def test_a_layout_the_columns_cannot_have_is_refused_naming_the_option(layout, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        check_layout(layout, SCHEMA, "t")


def test_a_layout_the_columns_can_have_passes():
    check_layout(TableLayout(Partitioning("day", "MONTH"), ("id", "at")), SCHEMA, "t")
    check_layout(TableLayout(Partitioning(None, "HOUR")), SCHEMA, "t")


def test_only_what_is_asked_is_compared_with_an_existing_table():
    found = TableLayout(Partitioning("at", "DAY"), ("id",))

    assert layout_problem(TableLayout(), found, "t") is None
    assert layout_problem(TableLayout(Partitioning("at", "DAY"), ("id",)), found, "t") is None
    assert "is partitioned by at:DAY, --partition-by asks at:MONTH" in layout_problem(
        TableLayout(Partitioning("at", "MONTH")), found, "t"
    )
    assert "is not partitioned, --partition-by asks at:DAY" in layout_problem(
        TableLayout(Partitioning("at", "DAY")), TableLayout(), "t"
    )
    assert "is clustered by id, --cluster-by asks at" in layout_problem(TableLayout(clustering=("at",)), found, "t")
    pipelines_own = TableLayout(Partitioning("at", "MONTH"), asked=False)  # a table from before keeps its layout
    assert layout_problem(pipelines_own, found, "t") is None


def test_a_merge_key_is_a_column_or_a_records_field_holding_a_value():
    assert key_path(SCHEMA, "id") == ("id",)
    assert key_path(SCHEMA, "User.Id") == ("user", "id")
    assert key_path(SCHEMA, "user.email") == ("user__email",)  # flattened
    for key in ("user", "user.meta", "nope"):
        with pytest.raises(ConfigError, match="merge needs a key field holding a value"):
            key_path(SCHEMA, key)


def test_a_runs_staging_table_is_a_name_bigquery_accepts_beside_the_table():
    assert staging_table("Orders-2026", "nightly.2026-11-30") == "Orders-2026__bqhold_nightly_2026_11_30"
