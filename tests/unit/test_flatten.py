"""Flattening: nested objects become a__b columns, lists JSON text, names warehouse-safe."""

from __future__ import annotations

import json

import polars as pl
import pytest

from tasks.core.errors import InputError
from tasks.core.flatten import column_name, flatten


def test_nested_structs_become_double_underscore_columns():
    frame = pl.DataFrame([{"a": {"b": {"c": 1}, "d": "x"}, "e": 2}])

    flat = flatten(frame)

    assert flat.to_dicts() == [{"a__b__c": 1, "a__d": "x", "e": 2}]


def test_null_struct_gives_null_leaf_columns():
    frame = pl.DataFrame([{"user": {"id": 1, "addr": {"city": "x"}}}, {"user": {"id": 2, "addr": None}}])

    flat = flatten(frame)

    assert flat["user__addr__city"].to_list() == ["x", None]
    assert flat["user__id"].to_list() == [1, 2]


def test_lists_become_json_text_and_null_lists_stay_null():
    frame = pl.DataFrame({"tags": [["a", "b"], [], None]})

    flat = flatten(frame)

    assert flat.schema["tags"] == pl.String
    assert flat["tags"].to_list() == ['["a","b"]', "[]", None]


def test_lists_of_structs_become_json_text_that_parses_back():
    frame = pl.DataFrame({"items": [[{"k": 1, "v": "x"}, {"k": 2, "v": None}]]})

    [text] = flatten(frame)["items"].to_list()

    assert json.loads(text) == [{"k": 1, "v": "x"}, {"k": 2, "v": None}]


def test_list_text_escapes_quotes_and_keeps_unicode():
    frame = pl.DataFrame({"s": [['he said "hi"', "ü"]]})

    [text] = flatten(frame)["s"].to_list()

    assert json.loads(text) == ['he said "hi"', "ü"]


def test_list_inside_a_struct_becomes_json_text():
    frame = pl.DataFrame([{"d": {"e": [1, 2]}}])

    assert flatten(frame).to_dicts() == [{"d__e": "[1,2]"}]


def test_nested_lists_become_json_text():
    frame = pl.DataFrame({"m": [[[1], [2, 3]]]})

    assert flatten(frame)["m"].to_list() == ["[[1],[2,3]]"]


@pytest.mark.parametrize(
    ("raw", "name"),
    [
        ("CamelCase", "camelcase"),
        ("First Name", "first_name"),
        ("my-field", "my_field"),
        ("a  b--c", "a_b_c"),
        ("a.b", "a_b"),
        ("1st", "_1st"),
        ("  X  ", "x"),
        ("", "field"),
        ("ÄÖ", "field"),
    ],
)
def test_column_names_are_normalised(raw, name):
    assert column_name(raw) == name


def test_column_names_are_capped_at_300_characters():
    assert len(column_name("x" * 1000)) == 300


def test_flatten_normalises_every_column_name():
    frame = pl.DataFrame([{"User Info": {"First-Name": "a"}, "2nd": 1}])

    assert flatten(frame).columns == ["user_info__first_name", "_2nd"]


def test_kept_columns_are_untouched():
    frame = pl.DataFrame({"__line": [1], "Value": [2]})

    flat = flatten(frame, keep=frozenset({"__line"}))

    assert flat.columns == ["__line", "value"]
    assert flat["__line"].to_list() == [1]


def test_flat_frame_keeps_values_and_types():
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", None], "c": [1.5, 2.5]})

    flat = flatten(frame)

    assert flat.to_dicts() == frame.to_dicts()
    assert flat.schema == frame.schema


def test_colliding_normalised_names_raise_input_error_naming_both():
    frame = pl.DataFrame({"a b": [1], "A-B": [2]})

    with pytest.raises(InputError) as info:
        flatten(frame)

    assert "'a b'" in str(info.value) and "'A-B'" in str(info.value) and "'a_b'" in str(info.value)


def test_nested_field_colliding_with_a_flat_one_raises_input_error():
    frame = pl.DataFrame([{"a": {"b": 1}, "a__b": 2}])

    with pytest.raises(InputError):
        flatten(frame)
