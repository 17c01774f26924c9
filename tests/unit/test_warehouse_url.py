"""--warehouse URLs: DuckDB files and BigQuery datasets, anything else a ConfigError."""

from __future__ import annotations

from pathlib import Path

import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.warehouse_url import WarehouseTarget, parse_warehouse


def test_duckdb_absolute_path():
    target = parse_warehouse("duckdb:///tmp/wh/warehouse.duckdb")

    assert target == WarehouseTarget("duckdb", path=Path("/tmp/wh/warehouse.duckdb"))
    assert target.path.is_absolute()


def test_duckdb_relative_path_is_made_absolute_from_the_working_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = parse_warehouse("duckdb://bqhold-data/warehouse.duckdb")

    assert target.path == tmp_path / "bqhold-data" / "warehouse.duckdb"
    assert target.display() == f"duckdb://{tmp_path}/bqhold-data/warehouse.duckdb"


def test_bigquery_project_and_dataset():
    target = parse_warehouse("bigquery://my-project-123/analytics_raw")

    assert (target.kind, target.project, target.dataset) == ("bigquery", "my-project-123", "analytics_raw")


def test_bigquery_trailing_slash_is_tolerated():
    assert parse_warehouse("bigquery://my-project/ds/").dataset == "ds"


def test_bigquery_domain_scoped_project():
    assert parse_warehouse("bigquery://example.com:my-project/ds").project == "example.com:my-project"


@pytest.mark.parametrize("url", ["duckdb:///tmp/w.duckdb", "bigquery://my-project/ds"])
def test_display_gives_back_the_url(url):
    assert parse_warehouse(url).display() == url


@pytest.mark.parametrize(
    "url",
    [
        "duckdb://",
        "duckdb:///",
        "bigquery://",
        "bigquery://my-project",
        "bigquery://my-project/ds/extra",
        "bigquery://My_Project/ds",
        "bigquery://my-project/bad-dataset",
        "bigquery://my-project/ds;drop",
        "postgres://host/db",
        "/tmp/warehouse.duckdb",
        "",
    ],
)
def test_unusable_urls_are_config_errors_quoting_the_url(url):
    with pytest.raises(ConfigError) as info:
        parse_warehouse(url)

    assert repr(url) in str(info.value)
    assert info.value.exit_code == 2


def test_dataset_with_a_trailing_newline_is_refused():
    with pytest.raises(ConfigError):
        parse_warehouse("bigquery://my-project/ds\n")
