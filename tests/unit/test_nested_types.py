"""Records, arrays, JSON, dates and timestamps: the types a batch is staged as, and what does not fit them."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from bqhold.tasks.core.column_types import ArrayType, ColumnType, RecordType, only_adds_fields, parse_type
from bqhold.tasks.core.records import QUARANTINE_REASON
from bqhold.tasks.core.schema import conform, widens

INT, STR, FLOAT = ColumnType.INT64, ColumnType.STRING, ColumnType.FLOAT64


def record(**fields) -> RecordType:
    return RecordType(tuple(fields.items()))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (["2026-11-30", "2024-02-29", None], ColumnType.DATE),
        (["2026-11-30T10:00:00Z", "2026-11-30 10:00:00.123456+02:00", "2026-11-30T10:00:00"], ColumnType.TIMESTAMP),
        (["2026-11-30T10:00:00-0500"], ColumnType.TIMESTAMP),
        (["2026-11-30", "2026-11-30T10:00:00Z"], STR),  # two forms: neither rule holds for every value
        (["2026-02-30"], STR),  # looks like a date, is none
        (["2026-11-30T10:00:00.1234567Z"], STR),  # finer than BigQuery's microseconds
        (["30/11/2026"], STR),
        (["2026-11-30", "soon"], STR),
    ],
)
def test_text_is_a_date_or_timestamp_only_when_every_value_is_one_in_iso_form(values, expected):
    conformed = conform(pl.DataFrame({"at": values}, schema={"at": pl.String}), {})

    assert conformed.new_columns == {"at": expected}
    assert conformed.rejected.is_empty()


def test_timestamps_are_kept_in_utc_to_the_microsecond():
    frame = pl.DataFrame({"at": ["2026-11-30T10:00:00.000001+02:00", "2026-11-30T10:00:00"]})

    assert conform(frame, {}).frame["at"].to_list() == [
        datetime(2026, 11, 30, 8, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 11, 30, 10, 0, tzinfo=UTC),
    ]


def test_a_later_value_that_is_no_date_is_quarantined_with_the_option_that_keeps_it():
    frame = pl.DataFrame({"day": ["2026-12-01", "tomorrow"], "__line": [7, 8]})

    conformed = conform(frame, {"day": ColumnType.DATE}, passthrough=frozenset({"__line"}))

    assert conformed.frame["day"].to_list() == [date(2026, 12, 1)]
    [reason] = conformed.rejected[QUARANTINE_REASON].to_list()
    assert reason == "field 'day': expected DATE, got tomorrow (--string-columns day would keep it as text)"


def test_a_pipeline_declares_a_type_its_first_values_would_not_give():
    frame = pl.DataFrame({"zip": [1234, 501], "sent": ["2026-11-30", "2026-12-01"]})

    conformed = conform(frame, {}, declared={"zip": STR, "sent": ColumnType.TIMESTAMP})

    assert conformed.new_columns == {"zip": STR, "sent": ColumnType.TIMESTAMP}
    assert conformed.frame["zip"].to_list() == ["1234", "501"]


def test_objects_and_arrays_of_objects_are_typed_at_every_depth():
    frame = pl.DataFrame(
        [{"order": {"id": 1, "at": "2026-11-30T10:00:00Z", "lines": [{"sku": "a", "qty": 2, "tags": ["x"]}]}}]
    )

    conformed = conform(frame, {})

    expected = record(
        id=INT,
        at=ColumnType.TIMESTAMP,
        lines=ArrayType(record(sku=STR, qty=INT, tags=ArrayType(STR))),
    )
    assert conformed.new_columns == {"order": expected}
    assert conformed.frame["order"][0]["at"] == datetime(2026, 11, 30, 10, tzinfo=UTC)


def test_a_record_gains_the_fields_a_later_batch_brings_and_keeps_its_own_order():
    known = {"user": record(id=INT, name=STR)}
    frame = pl.DataFrame([{"user": {"plan": "pro", "id": 3}}])

    conformed = conform(frame, known)

    assert conformed.new_columns == {"user": record(id=INT, name=STR, plan=STR)}
    assert conformed.frame["user"].to_list() == [{"id": 3, "name": None, "plan": "pro"}]


def test_a_field_of_a_record_widens_to_float64_when_a_batch_brings_fractions():
    conformed = conform(pl.DataFrame([{"m": {"v": 1.5}}]), {"m": record(v=INT)})

    assert conformed.new_columns == {"m": record(v=FLOAT)}
    assert conformed.frame["m"].to_list() == [{"v": 1.5}]


def test_a_value_deep_in_a_record_that_does_not_fit_quarantines_its_record_only():
    known = {"order": record(lines=ArrayType(record(qty=INT)))}
    frame = pl.DataFrame(
        {"order": [{"lines": [{"qty": "2"}]}, {"lines": [{"qty": "two"}]}, {"lines": None}], "__line": [1, 2, 3]}
    )

    conformed = conform(frame, known, passthrough=frozenset({"__line"}))

    assert conformed.frame["__line"].to_list() == [1, 3]
    assert conformed.frame["order"].to_list() == [{"lines": [{"qty": 2}]}, {"lines": None}]
    assert conformed.rejected["__line"].to_list() == [2]
    assert "expected STRUCT<lines ARRAY<STRUCT<qty INT64>>>" in conformed.rejected[QUARANTINE_REASON][0]


def test_a_scalar_where_a_record_is_staged_is_quarantined():
    frame = pl.DataFrame({"user": ["just text"], "__line": [4]})

    conformed = conform(frame, {"user": record(id=INT)}, passthrough=frozenset({"__line"}))

    assert conformed.frame.is_empty() and conformed.rejected["__line"].to_list() == [4]


def test_a_json_column_takes_objects_and_any_value_as_json_text():
    frame = pl.DataFrame({"payload": ['{"a":1}', "plain"]})

    conformed = conform(frame, {"payload": ColumnType.JSON}, json=frozenset())

    assert conformed.frame["payload"].to_list() == ['"{\\"a\\":1}"', '"plain"']  # a string is a JSON string
    assert conform(frame, {}, json=frozenset({"payload"})).frame["payload"].to_list() == ['{"a":1}', "plain"]


def test_an_object_staged_where_text_is_kept_as_its_json_text():
    conformed = conform(pl.DataFrame([{"meta": {"k": 1}}]), {"meta": STR})

    assert conformed.frame["meta"].to_list() == ['{"k":1}']


def test_empty_objects_and_arrays_without_values_wait_for_a_type():
    frame = pl.DataFrame({"e": [[], None]}, schema={"e": pl.List(pl.Null)})

    assert conform(frame, {}).new_columns == {}


@pytest.mark.parametrize(
    ("old", "new", "widening", "adding"),
    [
        ("STRUCT<a INT64>", "STRUCT<a INT64, b STRING>", True, True),
        ("STRUCT<a INT64>", "STRUCT<a FLOAT64>", True, False),
        ("ARRAY<STRUCT<a INT64>>", "ARRAY<STRUCT<a INT64, c DATE>>", True, True),
        ("STRUCT<a INT64, b STRING>", "STRUCT<a INT64>", False, False),
        ("STRUCT<a INT64>", "STRING", False, False),
        ("ARRAY<INT64>", "ARRAY<STRING>", True, False),
        ("INT64", "ARRAY<INT64>", False, False),
    ],
)
def test_which_changes_of_a_type_widen_it_and_which_only_add_fields(old, new, widening, adding):
    assert widens(parse_type(old), parse_type(new)) is widening
    assert only_adds_fields(parse_type(old), parse_type(new)) is adding
