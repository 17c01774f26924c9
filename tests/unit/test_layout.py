"""Hold layout: every path follows from (run, batch); run ids are safe in file names."""

from __future__ import annotations

from pathlib import Path

import pytest

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.layout import HoldLayout, check_run_id

LAYOUT = HoldLayout(Path("/hold"))


def test_paths_follow_from_run_and_batch():
    assert LAYOUT.database == Path("/hold/hold.duckdb")
    assert LAYOUT.checkpoint("r1") == Path("/hold/runs/r1/checkpoint.json")
    assert LAYOUT.summary("r1") == Path("/hold/runs/r1/summary.json")
    assert LAYOUT.segment("r1", 7, "parquet") == Path("/hold/runs/r1/segments/batch-000007.parquet")
    assert LAYOUT.quarantine("r1", 7) == Path("/hold/runs/r1/quarantine/batch-000007.jsonl")


def test_segment_names_sort_in_batch_order():
    names = [LAYOUT.segment("r1", batch, "jsonl").name for batch in (10, 2, 100, 1)]

    assert sorted(names) == [LAYOUT.segment("r1", batch, "jsonl").name for batch in (1, 2, 10, 100)]


@pytest.mark.parametrize("run_id", ["r", "generic-20261122T101500Z-3fa2", "a.b_c-d", "9" * 100])
def test_usable_run_ids_are_accepted(run_id):
    assert check_run_id(run_id) == run_id


@pytest.mark.parametrize("run_id", ["", ".hidden", "-x", "../up", "a/b", "a b", "x" * 101, "ü"])
def test_unusable_run_ids_are_refused_before_any_path_is_built(run_id):
    with pytest.raises(ConfigError, match="run id"):
        LAYOUT.run_dir(run_id)


def test_run_id_with_a_trailing_newline_is_refused():
    with pytest.raises(ConfigError):
        check_run_id("run-1\n")
