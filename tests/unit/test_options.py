"""Job options: bad values are refused with the option's name; a table name from the input."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import default_table, options_from, parse_string_columns

GOOD = {"input": "data/events.jsonl", "table": "events"}


def test_defaults_are_valid():
    options = options_from(GOOD).check_combination()

    assert (options.input, options.table, options.batch_size) == ("data/events.jsonl", "events", 50_000)


@pytest.mark.parametrize(
    ("changes", "option"),
    [
        ({"batch_size": 0}, "--batch-size"),
        ({"batch_size": -5}, "--batch-size"),
        ({"memory_limit_mb": 63}, "--memory-limit-mb"),
        ({"memory_limit_mb": 0}, "--memory-limit-mb"),
        ({"memory_threshold": 9.9}, "--memory-threshold"),
        ({"memory_threshold": 96}, "--memory-threshold"),
        ({"max_retries": -1}, "--max-retries"),
        ({"max_error_rate": -0.01}, "--max-error-rate"),
        ({"max_error_rate": 1.5}, "--max-error-rate"),
        ({"max_record_bytes": 1023}, "--max-record-bytes"),
        ({"job_timeout_s": 0}, "--job-timeout-s"),
        ({"job_timeout_s": -1.5}, "--job-timeout-s"),
    ],
)
def test_bad_values_are_refused_naming_the_option_and_value(changes, option):
    with pytest.raises(ConfigError) as info:
        options_from({**GOOD, **changes})

    message = str(info.value)
    assert message.startswith(option)
    assert str(next(iter(changes.values()))) in message


@pytest.mark.parametrize(
    "changes",
    [
        {"batch_size": 1},
        {"memory_limit_mb": 64},
        {"memory_limit_mb": None},
        {"memory_threshold": 10},
        {"memory_threshold": 95},
        {"max_retries": 0},
        {"max_error_rate": 0},
        {"max_error_rate": 1},
        {"max_record_bytes": 1024},
        {"job_timeout_s": 0.5},
    ],
)
def test_boundary_values_are_accepted(changes):
    options = options_from({**GOOD, **changes})

    assert all(getattr(options, name) == value for name, value in changes.items())


@pytest.mark.parametrize(
    ("spec", "table"),
    [
        ("data/Orders-2026.jsonl", "orders_2026"),
        ("events.ndjson", "events"),
        ("dir/sales.csv", "sales"),
        ("data/events-*.jsonl", "events"),
        ("data/*.jsonl", "records"),
        ("archive/2026.parquet", "_2026"),
        ("data/orders.v2.jsonl", "orders"),
        ("data/", "data"),
    ],
)
def test_default_table_comes_from_the_file_name(spec, table):
    assert default_table(spec) == table


def test_string_columns_name_fields_as_keys_do():
    assert parse_string_columns("zip, user.Phone,,Café") == {"zip", "user__phone", "café"}
    assert parse_string_columns(None) == frozenset()


def test_a_table_name_from_the_input_stays_plain_ascii():
    assert default_table("data/Données-2026.jsonl") == "donn_es_2026"
