"""Naming and nesting a batch as staged: objects as records, columns or JSON; arrays kept; names warehouse-safe."""

from __future__ import annotations

import json

import polars as pl
import pytest

from bqhold.tasks.core.flatten import column_name, field_column, flatten, is_column_name, table_name
from bqhold.tasks.core.records import QUARANTINE_REASON


def test_by_default_an_object_is_a_record_with_its_fields_named_as_columns_are():
    frame = pl.DataFrame([{"User Info": {"First-Name": "a", "Address": {"City": "x"}}, "e": 2}])

    flat = flatten(frame)

    assert flat.frame.to_dicts() == [{"user_info": {"first_name": "a", "address": {"city": "x"}}, "e": 2}]
    assert flat.json == frozenset()


def test_flattened_an_object_becomes_double_underscore_columns():
    frame = pl.DataFrame([{"a": {"b": {"c": 1}, "d": "x"}, "e": 2}])

    assert flatten(frame, nesting="flatten").frame.to_dicts() == [{"a__b__c": 1, "a__d": "x", "e": 2}]


def test_flattened_a_null_object_gives_null_leaf_columns():
    frame = pl.DataFrame([{"user": {"id": 1, "addr": {"city": "x"}}}, {"user": {"id": 2, "addr": None}}])

    flat = flatten(frame, nesting="flatten").frame

    assert flat["user__addr__city"].to_list() == ["x", None]
    assert flat["user__id"].to_list() == [1, 2]


def test_as_json_an_object_is_its_json_text_and_its_path_is_reported():
    frame = pl.DataFrame([{"user": {"id": 1, "tags": ["a"]}}, {"user": None}])

    flat = flatten(frame, nesting="json")

    assert [None if text is None else json.loads(text) for text in flat.frame["user"]] == [
        {"id": 1, "tags": ["a"]},
        None,
    ]
    assert flat.json == frozenset({"user"})


@pytest.mark.parametrize("nesting", ["record", "flatten", "json"])
def test_arrays_of_values_stay_arrays_and_null_arrays_stay_null(nesting):
    frame = pl.DataFrame({"tags": [["a", "b"], [], None]})

    flat = flatten(frame, nesting=nesting).frame

    assert flat.schema["tags"] == pl.List(pl.String)
    assert flat["tags"].to_list() == [["a", "b"], [], None]


def test_an_arrays_objects_are_records_with_their_fields_named_as_columns_are():
    frame = pl.DataFrame({"Items": [[{"K": 1, "Long Name": "x"}, {"K": 2, "Long Name": None}], None]})

    flat = flatten(frame, nesting="flatten").frame

    assert flat["items"].to_list() == [[{"k": 1, "long_name": "x"}, {"k": 2, "long_name": None}], None]


def test_an_array_of_arrays_which_bigquery_cannot_hold_becomes_json_text():
    frame = pl.DataFrame([{"m": [[1], [2, 3]], "d": {"grid": [["a"]]}}])

    flat = flatten(frame)

    assert flat.frame.to_dicts() == [{"m": "[[1],[2,3]]", "d": {"grid": '[["a"]]'}}]
    assert flat.json == frozenset({"m", "d__grid"})


def test_json_text_escapes_quotes_and_keeps_unicode():
    frame = pl.DataFrame({"s": [[['he said "hi"', "ü"]]]})

    [text] = flatten(frame).frame["s"].to_list()

    assert json.loads(text) == [['he said "hi"', "ü"]]


def test_two_fields_of_an_object_that_become_one_name_quarantine_the_record_naming_both():
    frame = pl.DataFrame([{"u": {"Name": "x", "name": None}}, {"u": {"Name": "y", "name": "z"}}])

    flat = flatten(frame).frame

    assert flat["u"].to_list() == [{"name": "x"}, {"name": "y"}]
    assert flat[QUARANTINE_REASON].to_list()[0] is None
    assert flat[QUARANTINE_REASON].to_list()[1].startswith("fields 'u.Name' and 'u.name' both become column 'name'")


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
        ("_id", "_id"),
        ("__x", "__x"),
        ("_table_suffix", "f__table_suffix"),
        ("ÄÖ", "äö"),
        ("Café", "café"),
        ("名前", "名前"),
        ("नमस्ते", "नमस्ते"),
        ("😀", "u1f600"),
        ("a😀", "a_u1f600"),
        ("😀😀", "u1f600_u1f600"),
        ("price €", "price_u20ac"),
        ("²nd", "_²nd"),
    ],
)
def test_column_names_are_normalised(raw, name):
    assert column_name(raw) == name


@pytest.mark.parametrize("raw", ["CamelCase", "a  b--c", "1st", "Café", "名前", "😀😀", "_table_x", "", "İstanbul"])
def test_a_column_name_maps_to_itself_and_is_one(raw):
    name = column_name(raw)

    assert column_name(name) == name and field_column(name) == name
    assert is_column_name(name)


@pytest.mark.parametrize("name", ["", "Name", "a b", 'a"b', "a.b", "1a", "x" * 301, "é\n"])
def test_other_names_are_not_column_names(name):
    assert not is_column_name(name)


def test_different_non_latin_names_stay_different():
    names = ["名前", "😀", "😁", "café", "cafe", "naïve", "€"]

    assert len({column_name(name) for name in names}) == len(names)


def test_table_names_stay_plain_ascii():
    assert table_name("Données 2026") == "donn_es_2026"
    assert table_name("Orders-2026") == "orders_2026"


def test_column_names_are_capped_at_300_characters():
    assert len(column_name("x" * 1000)) == 300


def test_flatten_normalises_every_column_name():
    frame = pl.DataFrame([{"User Info": {"First-Name": "a"}, "2nd": 1}])

    assert flatten(frame, nesting="flatten").frame.columns == ["user_info__first_name", "_2nd"]


def test_kept_columns_are_untouched():
    frame = pl.DataFrame({"__line": [1], "Value": [2]})

    flat = flatten(frame, keep=frozenset({"__line"})).frame

    assert flat.columns == ["__line", "value"]
    assert flat["__line"].to_list() == [1]


def test_flat_frame_keeps_values_and_types():
    frame = pl.DataFrame({"a": [1, 2], "b": ["x", None], "c": [1.5, 2.5]})

    flat = flatten(frame).frame

    assert flat.to_dicts() == frame.to_dicts()
    assert flat.schema == frame.schema


def test_a_record_with_two_fields_for_one_column_gets_a_reason_naming_both():
    frame = pl.DataFrame({"a b": [1], "A-B": [2]})

    flat = flatten(frame).frame

    assert flat.columns == ["a_b", QUARANTINE_REASON]
    [reason] = flat[QUARANTINE_REASON].to_list()
    assert reason.startswith("fields 'a b' and 'A-B' both become column 'a_b'")


def test_fields_for_one_column_in_different_records_share_it():
    frame = pl.DataFrame([{"id": 1, "Name": "x", "name": None}, {"id": 2, "Name": None, "name": "y"}])

    flat = flatten(frame).frame

    assert flat.to_dicts() == [
        {"id": 1, "name": "x", QUARANTINE_REASON: None},
        {"id": 2, "name": "y", QUARANTINE_REASON: None},
    ]


def test_nested_field_colliding_with_a_flat_one_is_a_reason_only_where_both_are_set():
    frame = pl.DataFrame([{"a": {"b": 1}, "a__b": None}, {"a": {"b": None}, "a__b": 2}, {"a": {"b": 3}, "a__b": 4}])

    flat = flatten(frame, nesting="flatten").frame

    assert flat["a__b"].to_list() == [1, 2, 3]
    assert [reason is not None for reason in flat[QUARANTINE_REASON]] == [False, False, True]


def test_fields_of_different_types_for_one_column_keep_the_first_type():
    frame = pl.DataFrame([{"id": 1, "ID": None}, {"id": None, "ID": "x"}])

    flat = flatten(frame).frame

    assert flat.schema["id"] == pl.Int64
    assert [reason is not None for reason in flat[QUARANTINE_REASON]] == [False, True]


def test_a_collision_keeps_an_earlier_reason():
    frame = pl.DataFrame({"a": [1, 1], "A": [2, 2], QUARANTINE_REASON: ["from the transform", None]})

    flat = flatten(frame, keep=frozenset({QUARANTINE_REASON})).frame

    reasons = flat[QUARANTINE_REASON].to_list()
    assert reasons[0] == "from the transform" and reasons[1].startswith("fields 'a' and 'A'")


def test_a_field_named_like_a_reserved_or_kept_column_is_prefixed():
    frame = pl.DataFrame({"__line": [7], "__Line": [1], "_Batch": [2], "x": [3]})

    flat = flatten(frame, keep=frozenset({"__line"}), reserved=frozenset({"_batch"})).frame

    assert flat.to_dicts() == [{"__line": 7, "f___line": 1, "f__batch": 2, "x": 3}]
