"""Paths an option names: a directory bqhold can create and write, or one line naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.paths import warehouse_file, writable_directory


def test_a_missing_directory_is_created(tmp_path: Path) -> None:
    wanted = tmp_path / "a" / "b"

    assert writable_directory(wanted, "--hold-dir") == wanted
    assert wanted.is_dir()


def test_a_file_is_not_a_directory_and_the_message_names_flag_and_path(tmp_path: Path) -> None:
    path = tmp_path / "hold"
    path.write_text("x")

    with pytest.raises(ConfigError) as info:
        writable_directory(path, "--hold-dir")
    assert str(info.value).startswith(f"--hold-dir {path} is a file, not a directory;")


def test_a_directory_under_a_file_names_the_file_in_the_way(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")

    with pytest.raises(ConfigError) as info:
        writable_directory(tmp_path / "blocker" / "deeper" / "hold", "--hold-dir")
    assert f"{tmp_path / 'blocker'} is a file" in str(info.value)
    assert f"--hold-dir {tmp_path / 'blocker' / 'deeper' / 'hold'}:" in str(info.value)


def test_a_warehouse_under_a_file_names_the_url_and_the_file(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_text("x")
    target = tmp_path / "blocker" / "w.duckdb"

    with pytest.raises(ConfigError) as info:
        warehouse_file(target)
    message = str(info.value)
    assert message.startswith(f"--warehouse duckdb://{target}: {tmp_path / 'blocker'} is a file")
    assert "name a DuckDB file" in message


def test_a_warehouse_that_is_a_directory_is_refused_with_an_example(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is a directory") as info:
        warehouse_file(tmp_path)
    assert f"duckdb://{tmp_path}/warehouse.duckdb" in str(info.value)


def test_a_warehouse_file_gets_its_directory_created(tmp_path: Path) -> None:
    target = tmp_path / "data" / "w.duckdb"

    assert warehouse_file(target) == target
    assert target.parent.is_dir() and not target.exists()
