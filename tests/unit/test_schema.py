"""conform: a batch cast to the staged schema; values that cannot take a type are rejected."""

from __future__ import annotations

from datetime import UTC, date, datetime

import polars as pl
import pytest

from bqhold.tasks.core.column_types import ColumnType
from bqhold.tasks.core.records import QUARANTINE_REASON
from bqhold.tasks.core.schema import column_type, conform, read_as_text
from bqhold.tasks.core.text_values import float_text, int_text, type_text_columns

LINE = frozenset({"__line"})


def with_lines(**columns) -> pl.DataFrame:
    """A frame of `columns` plus a __line column 1..n."""
    frame = pl.DataFrame(columns, strict=False)
    return frame.with_columns(pl.Series("__line", range(1, frame.height + 1), dtype=pl.Int64))


def test_new_columns_are_reported_with_their_types():
    frame = pl.DataFrame(
        {
            "i": [1],
            "f": [1.5],
            "s": ["x"],
            "b": [True],
            "t": [datetime(2024, 1, 1, tzinfo=UTC)],
            "d": [date(2024, 1, 1)],
        }
    )

    result = conform(frame, {})

    assert result.new_columns == {
        "i": ColumnType.INT64,
        "f": ColumnType.FLOAT64,
        "s": ColumnType.STRING,
        "b": ColumnType.BOOL,
        "t": ColumnType.TIMESTAMP,
        "d": ColumnType.DATE,
    }
    assert result.rejected.height == 0


def test_known_columns_are_not_reported_as_new():
    result = conform(pl.DataFrame({"a": [1], "b": ["x"]}), {"a": ColumnType.INT64})

    assert result.new_columns == {"b": ColumnType.STRING}


def test_all_null_new_column_is_skipped_until_it_has_a_value():
    result = conform(pl.DataFrame({"a": [1, 2], "n": [None, None]}), {})

    assert "n" not in result.new_columns
    assert "n" not in result.frame.columns
    assert result.frame["a"].to_list() == [1, 2]


def test_all_null_known_column_is_kept_with_its_type():
    result = conform(pl.DataFrame({"a": [None, None]}), {"a": ColumnType.INT64})

    assert result.frame.schema["a"] == pl.Int64
    assert result.frame["a"].to_list() == [None, None]


def test_int_values_widen_into_a_float_column():
    result = conform(pl.DataFrame({"a": [1, 2]}), {"a": ColumnType.FLOAT64})

    assert result.frame.schema["a"] == pl.Float64
    assert result.frame["a"].to_list() == [1.0, 2.0]
    assert result.rejected.height == 0


def test_text_that_is_not_a_number_is_rejected_from_an_int_column_and_good_rows_survive():
    result = conform(with_lines(qty=["1", "abc", "3"]), {"qty": ColumnType.INT64}, LINE)

    assert result.frame["qty"].to_list() == [1, 3]
    assert result.frame["__line"].to_list() == [1, 3]
    [row] = result.rejected.to_dicts()
    assert row["__line"] == 2
    assert "qty" in row[QUARANTINE_REASON] and "abc" in row[QUARANTINE_REASON]
    assert "INT64" in row[QUARANTINE_REASON]


def test_fractions_widen_an_int_column_to_float():
    result = conform(with_lines(qty=[1.0, 1.5, None]), {"qty": ColumnType.INT64}, LINE)

    assert result.frame["qty"].to_list() == [1.0, 1.5, None]
    assert result.new_columns == {"qty": ColumnType.FLOAT64}
    assert result.rejected.height == 0


def test_whole_floats_fit_an_int_column():
    result = conform(pl.DataFrame({"a": [1.0, 2.0]}), {"a": ColumnType.INT64})

    assert result.frame["a"].to_list() == [1, 2]
    assert result.rejected.height == 0


def test_float_too_large_for_int64_is_rejected():
    result = conform(pl.DataFrame({"a": [1e30]}), {"a": ColumnType.INT64})

    assert result.frame.height == 0
    assert result.rejected.height == 1


def test_rejected_row_keeps_its_original_values_and_first_reason():
    frame = with_lines(a=["x", "1"], b=["y", "2"])

    result = conform(frame, {"a": ColumnType.INT64, "b": ColumnType.INT64}, LINE)

    [row] = result.rejected.to_dicts()
    assert (row["a"], row["b"]) == ("x", "y")
    assert row[QUARANTINE_REASON].startswith("field 'a'")


def test_anything_goes_into_a_string_column():
    frame = pl.DataFrame({"a": [1, 2], "b": [1.5, 2.5], "c": [True, False]})
    schema = {name: ColumnType.STRING for name in frame.columns}

    result = conform(frame, schema)

    assert result.rejected.height == 0
    assert result.frame.to_dicts() == [
        {"a": "1", "b": "1.5", "c": "true"},
        {"a": "2", "b": "2.5", "c": "false"},
    ]


def test_iso_timestamp_strings_go_into_a_timestamp_column_as_utc():
    frame = pl.DataFrame({"t": ["2024-01-02T03:04:05Z", "2024-01-02T05:04:05Z", None]})

    result = conform(frame, {"t": ColumnType.TIMESTAMP})

    assert result.frame.schema["t"] == pl.Datetime("us", "UTC")
    assert result.frame["t"].to_list() == [
        datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        datetime(2024, 1, 2, 5, 4, 5, tzinfo=UTC),
        None,
    ]
    assert result.rejected.height == 0


def test_timestamp_strings_with_an_offset_are_converted_to_utc():
    result = conform(pl.DataFrame({"t": ["2024-01-02T03:04:05+02:00"]}), {"t": ColumnType.TIMESTAMP})

    assert result.frame["t"].to_list() == [datetime(2024, 1, 2, 1, 4, 5, tzinfo=UTC)]


def test_text_that_is_not_a_timestamp_is_rejected():
    result = conform(with_lines(t=["2024-01-02T03:04:05Z", "nope"]), {"t": ColumnType.TIMESTAMP}, LINE)

    assert result.frame["__line"].to_list() == [1]
    assert result.rejected["__line"].to_list() == [2]
    assert "nope" in result.rejected[QUARANTINE_REASON][0]


def test_naive_and_zoned_datetimes_are_staged_as_utc_microseconds():
    naive = pl.DataFrame({"t": [datetime(2024, 1, 1, 12)]}).with_columns(pl.col("t").dt.cast_time_unit("ns"))
    zoned = pl.DataFrame({"t": [datetime(2024, 1, 1, 12)]}).with_columns(
        pl.col("t").dt.replace_time_zone("Europe/Paris")
    )

    assert conform(naive, {}).frame["t"].to_list() == [datetime(2024, 1, 1, 12, tzinfo=UTC)]
    assert conform(zoned, {}).frame["t"].to_list() == [datetime(2024, 1, 1, 11, tzinfo=UTC)]


def test_passthrough_columns_are_neither_typed_nor_reported():
    result = conform(with_lines(a=[1]), {}, LINE)

    assert "__line" not in result.new_columns
    assert result.frame["__line"].to_list() == [1]


@pytest.mark.parametrize(
    ("dtype", "expected"),
    [
        (pl.Int8, ColumnType.INT64),
        (pl.UInt32, ColumnType.INT64),
        (pl.Float32, ColumnType.FLOAT64),
        (pl.Decimal(10, 2), ColumnType.FLOAT64),
        (pl.Boolean, ColumnType.BOOL),
        (pl.Datetime("ms"), ColumnType.TIMESTAMP),
        (pl.Date, ColumnType.DATE),
        (pl.String, ColumnType.STRING),
        (pl.Null, None),
    ],
)
def test_column_type_of_polars_types(dtype, expected):
    assert column_type(dtype) == expected


def test_mixed_iso_timestamp_spellings_in_one_batch_are_all_accepted():
    frame = pl.DataFrame({"t": ["2024-01-01T00:00:00Z", "2024-01-02 03:04:05"]})

    result = conform(frame, {"t": ColumnType.TIMESTAMP})

    assert result.rejected.height == 0


def test_only_true_and_false_go_into_a_bool_column():
    result = conform(with_lines(flag=["True", "false", "yes", "1", "maybe"]), {"flag": ColumnType.BOOL}, LINE)

    assert result.frame["flag"].to_list() == [True, False]
    assert result.rejected["__line"].to_list() == [3, 4, 5], "'yes' and '1' are text that says something else"


def test_date_strings_go_into_a_date_column_and_bad_ones_are_rejected():
    result = conform(with_lines(d=["2024-01-02", "x"]), {"d": ColumnType.DATE}, LINE)

    assert result.frame["d"].to_list() == [date(2024, 1, 2)]
    assert result.rejected["__line"].to_list() == [2]


def test_numbers_are_not_booleans_and_booleans_not_numbers():
    to_bool = conform(with_lines(flag=[0, 1, 2]), {"flag": ColumnType.BOOL}, LINE)
    to_int = conform(with_lines(n=[True, None]), {"n": ColumnType.INT64}, LINE)

    assert to_bool.rejected["__line"].to_list() == [1, 2, 3]
    assert to_int.rejected["__line"].to_list() == [1] and to_int.frame["n"].to_list() == [None]
    assert to_int.rejected[QUARANTINE_REASON][0] == "field 'n': expected INT64, got true" + HINT.format("n")


HINT = " (--string-columns {} would keep it as text)"


def test_text_is_a_number_only_in_its_plain_form():
    frame = with_lines(zip=["2100", "02100", "-7", "+7", "1e3", "99999999999999999999"])

    result = conform(frame, {"zip": ColumnType.INT64}, LINE)

    assert result.frame["zip"].to_list() == [2100, -7]
    assert result.rejected["__line"].to_list() == [2, 4, 5, 6]
    assert result.rejected[QUARANTINE_REASON][0] == "field 'zip': expected INT64, got 02100" + HINT.format("zip")


def test_text_goes_into_a_float_column_only_when_no_digit_is_lost():
    frame = with_lines(x=["1.50", "2", "1e-3", "3.141592653589793238", "0.30000000000000004", "00.5", "NaN"])

    result = conform(frame, {"x": ColumnType.FLOAT64}, LINE)

    assert result.frame["x"].to_list() == [1.5, 2.0, 0.001, 0.30000000000000004]
    assert result.rejected["__line"].to_list() == [4, 6, 7]


def test_an_integer_a_float_cannot_hold_exactly_is_rejected_from_a_float_column():
    result = conform(with_lines(x=[2**53, 2**53 + 1, -(2**53) - 1]), {"x": ColumnType.FLOAT64}, LINE)

    assert result.frame["x"].to_list() == [float(2**53)]
    assert result.rejected["__line"].to_list() == [2, 3]


def test_a_decimal_a_float_cannot_hold_is_rejected():
    frame = with_lines(d=["1.25", "12345678901234567.891"]).with_columns(pl.col("d").str.to_decimal(scale=3))

    result = conform(frame, {"d": ColumnType.FLOAT64}, LINE)

    assert result.frame["d"].to_list() == [1.25]
    assert result.rejected["__line"].to_list() == [2]


def test_nanoseconds_a_timestamp_would_drop_are_rejected():
    frame = with_lines(t=[datetime(2024, 1, 1, 0, 0, 0, 1), datetime(2024, 1, 1)]).with_columns(
        pl.col("t").dt.cast_time_unit("ns") + pl.Series([0, 1]).cast(pl.Duration("ns"))
    )

    result = conform(frame, {}, LINE)

    assert result.frame["t"].to_list() == [datetime(2024, 1, 1, 0, 0, 0, 1, tzinfo=UTC)]
    assert result.rejected["__line"].to_list() == [2]


def test_string_columns_take_any_value_as_text_and_widen_a_typed_column():
    frame = with_lines(code=[1, 2], flag=[True, None], x=[1.5, 2.0])
    known = {"code": ColumnType.INT64, "flag": ColumnType.BOOL}

    result = conform(frame, known, LINE, text=frozenset({"code", "flag", "x"}))

    assert result.frame.select("code", "flag", "x").rows() == [("1", "true", "1.5"), ("2", None, "2.0")]
    assert result.new_columns == {"code": ColumnType.STRING, "flag": ColumnType.STRING, "x": ColumnType.STRING}


def test_whole_floats_keep_an_int_column():
    result = conform(pl.DataFrame({"a": [1.0, 2.0]}), {"a": ColumnType.INT64})

    assert result.new_columns == {} and result.frame["a"].to_list() == [1, 2]


@pytest.mark.parametrize(
    ("values", "dtype"),
    [
        (["1", "-2", "0"], pl.Int64),
        (["1.50", "2", "1e3"], pl.Float64),
        (["true", "FALSE", None], pl.Boolean),
        (["02100", "1"], pl.String),
        (["1", "+2"], pl.String),
        (["9223372036854775808"], pl.String),
        (["3.141592653589793238"], pl.String),
        (["NaN", "1"], pl.String),
        ([None, None], pl.String),
    ],
)
def test_a_text_column_takes_the_type_all_its_values_have(values, dtype):
    frame = pl.DataFrame({"c": values}, schema={"c": pl.String})

    typed = type_text_columns(frame)

    assert typed.schema["c"] == dtype
    if dtype == pl.String:
        assert typed.equals(frame), "text stays exactly as it was"


def test_columns_asked_for_as_text_stay_text():
    frame = pl.DataFrame({"a": ["1"], "b": ["1"]})

    assert type_text_columns(frame, ["b"]).schema == pl.Schema({"a": pl.Int64, "b": pl.String})


def test_plain_number_text_reads_back_the_same_value():
    frame = pl.DataFrame({"t": ["-0.0", "5e-324", "1e20", "0.000123"]})

    assert frame.select(float_text(pl.col("t")))["t"].to_list() == [-0.0, 5e-324, 1e20, 0.000123]
    assert frame.select(int_text(pl.col("t")))["t"].to_list() == [None] * 4


def test_readers_keep_as_text_what_is_asked_for_and_what_is_staged_as_text():
    known = {"a": ColumnType.STRING, "b": ColumnType.INT64}

    assert read_as_text(known, frozenset({"c"})) == {"a", "c"}


def test_bytes_become_text_only_when_they_are_utf8():
    result = conform(with_lines(b=[b"ok", b"\xff"]), {}, LINE)

    assert result.frame["b"].to_list() == ["ok"] and result.new_columns == {"b": ColumnType.STRING}
    assert result.rejected[QUARANTINE_REASON][0] == "field 'b': expected STRING, got bytes that are not UTF-8"


def test_nan_and_infinity_are_rejected_not_staged_as_null():
    result = conform(with_lines(x=[1.5, float("nan"), float("-inf"), None]), {}, LINE)

    assert result.frame["x"].to_list() == [1.5, None]
    assert result.rejected["__line"].to_list() == [2, 3]
    assert result.rejected[QUARANTINE_REASON][0] == "field 'x': expected FLOAT64, got NaN" + HINT.format("x")
