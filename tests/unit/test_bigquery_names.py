"""Names BigQuery accepts: its own rules for tables, datasets and projects, not stricter ones."""

from __future__ import annotations

import pytest

from bqhold.tasks.core.bigquery_names import check_dataset, check_project, check_table, table_problem
from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.options import options_from


@pytest.mark.parametrize(
    "name", ["orders", "Orders", "orders-2026", "ventes 2026", "café_2026", "注文", "_x", "2026", "a" * 1024]
)
def test_tables_bigquery_accepts_are_accepted(name):
    assert check_table(name) == name


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "it is empty"),
        ("a.b", "it holds '.'"),
        ("a`b'c", "it holds \"'\", '`'"),
        ("tab\there", "it holds '\\t'"),
        ("é" * 513, "it is longer than 1,024 bytes"),
    ],
)
def test_a_table_bigquery_refuses_is_refused_saying_why(name, problem):
    assert table_problem(name) == problem
    with pytest.raises(ConfigError, match="use letters, digits, underscores, dashes and spaces") as info:
        check_table(name)
    assert repr(name) in str(info.value) and info.value.exit_code == 2


@pytest.mark.parametrize("name", ["events", "Sales_EU", "_tmp", "a" * 1024])
def test_datasets_bigquery_accepts_are_accepted(name):
    assert check_dataset(name) == name


@pytest.mark.parametrize("name", ["", "my-dataset", "my dataset", "données", "a" * 1025])
def test_a_dataset_bigquery_refuses_is_refused(name):
    with pytest.raises(ConfigError, match="ASCII letters, digits and underscores"):
        check_dataset(name)


@pytest.mark.parametrize("project", ["my-project", "proj-1", "a12345", "example.com:my-project", "a" * 30])
def test_project_ids_are_accepted(project):
    assert check_project(project) == project


@pytest.mark.parametrize("project", ["p", "My-Project", "1project", "my-project-", "a" * 31, "my_project", ":proj-1"])
def test_what_is_not_a_project_id_is_refused(project):
    with pytest.raises(ConfigError, match="6 to 30 lower-case letters"):
        check_project(project)


def test_the_table_option_takes_any_bigquery_table_name_and_refuses_the_rest_in_one_line():
    assert options_from({"input": "x.jsonl", "table": "orders-2026"}).table == "orders-2026"

    with pytest.raises(ConfigError) as info:
        options_from({"input": "x.jsonl", "table": "sales.orders"})
    assert str(info.value).startswith("table name 'sales.orders' is not one BigQuery accepts (it holds '.')")
    assert "\n" not in str(info.value)
