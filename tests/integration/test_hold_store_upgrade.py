"""A hold dir written before row hashes and hold ids keeps working: its ledger gains the new
columns, its old batches are verified by count, new ones by content too; its staged table's copy
of the rows (they are in the segments) gives way to a view, and its columns are kept."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import duckdb
import polars as pl
import pytest

from bqhold.tasks.core.checkpoint import Counters
from bqhold.tasks.core.column_types import ColumnType
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.ledger import LedgerEntry
from bqhold.tasks.core.records import Position
from bqhold.tasks.core.staging import PreparedBatch, row_hashes
from bqhold.tasks.core.verify import Fingerprint
from bqhold.tasks.storage.hold_store import HoldStore

# The tables as the release before row hashes created them (the parts this test touches).
BEFORE = """
CREATE TABLE ledger (
    run_id VARCHAR, batch INTEGER, segment VARCHAR, quarantine VARCHAR,
    rows_read BIGINT, rows_written BIGINT, rows_quarantined BIGINT, duplicates_skipped BIGINT,
    end_file INTEGER, end_offset BIGINT, end_line BIGINT, input_done BOOLEAN, committed_at TIMESTAMPTZ);
INSERT INTO ledger VALUES ('old', 0, 'runs/old/segments/batch-000000.jsonl', NULL, 2, 2, 0, 0, 0, 10, 2, true, now());
CREATE SCHEMA staged;
CREATE TABLE staged.things (_run_id VARCHAR, _batch BIGINT, _loaded_at TIMESTAMPTZ, id VARCHAR);
INSERT INTO staged.things VALUES ('old', 0, now(), 'x'), ('old', 0, now(), 'y');
"""


def staged_rows(ids: list[str]) -> pl.DataFrame:
    content = pl.DataFrame({"id": ids})
    return content.with_columns(
        pl.lit("new").alias("_run_id"),
        pl.lit(0, dtype=pl.Int64).alias("_batch"),
        pl.lit(datetime(2026, 1, 1, tzinfo=UTC)).alias("_loaded_at"),
        row_hashes(content),
    )


def test_a_hold_dir_from_before_row_hashes_keeps_its_runs_and_stages_new_ones_with_sums(tmp_path: Path) -> None:
    with duckdb.connect(str(tmp_path / "hold.duckdb")) as con:
        con.execute(BEFORE)
    rows = staged_rows(["a", "b", "c"])
    entry = LedgerEntry("new", 0, "runs/new/segments/batch-000000.jsonl", None, Counters(3, 3), Position(), True)

    with HoldStore(HoldLayout(tmp_path)) as store:
        store.commit_batch("things", "", entry, PreparedBatch(rows, None, None, [], {}, Counters()))
        assert store.fingerprints("old") == {0: Fingerprint(2, None)}, "an old batch is checked by count only"
        assert store.fingerprints("new") == {0: Fingerprint(3, sum(rows["_row_hash"]))}
        hold_id = store.hold_id
        assert store.staged_schema("things") == {"id": ColumnType.STRING}, "the old table's columns are kept"

    with HoldStore(HoldLayout(tmp_path)) as again:
        assert again.hold_id == hold_id, "made once, then kept"
    with HoldStore(HoldLayout(tmp_path / "other")) as other:
        assert other.hold_id != hold_id
    with duckdb.connect(str(tmp_path / "hold.duckdb"), read_only=True) as con:
        kinds = con.execute("SELECT table_type FROM information_schema.tables WHERE table_schema = 'staged'").fetchall()
    assert kinds == [("VIEW",)], "no copy of the rows is left in the database"


# Dedupe keys as releases before key_batches stored them: each key with its table, run, batch and
# (from the release that scoped keys by warehouse on) warehouse.
KEYS_BEFORE = """
CREATE TABLE runs (
    run_id VARCHAR PRIMARY KEY, pipeline VARCHAR, input_spec VARCHAR, table_name VARCHAR,
    key_field VARCHAR, warehouse VARCHAR, inputs VARCHAR, fingerprint VARCHAR, created_at TIMESTAMPTZ);
INSERT INTO runs (run_id, table_name, warehouse) VALUES ('old', 'things', 'duckdb:///w.duckdb');
CREATE TABLE dedupe_keys (table_name VARCHAR, key_hash UBIGINT, key VARCHAR, run_id VARCHAR, batch INTEGER);
INSERT INTO dedupe_keys SELECT 'things', md5_number_lower(k), k, 'old', b FROM (VALUES ('x', 0), ('y', 1)) t(k, b);
"""


# Dedupe keys as the release before XXH3 stored them: scoped by key_batches, hashed with md5.
KEYS_MD5 = """
CREATE TABLE key_batches (scope INTEGER, table_name VARCHAR, warehouse VARCHAR, run_id VARCHAR, batch INTEGER);
INSERT INTO key_batches SELECT s, 'things', 'duckdb:///w.duckdb', 'old', s - 1 FROM range(1, 3) t(s);
CREATE TABLE dedupe_keys (scope INTEGER, key_hash UBIGINT, key VARCHAR);
INSERT INTO dedupe_keys SELECT s, md5_number_lower(k), k FROM (VALUES ('x', 1), ('y', 2)) t(k, s);
"""


@pytest.mark.parametrize(
    "layout", ["before warehouses", "scoped by warehouse", "hashed with md5"], ids=lambda layout: layout
)
def test_dedupe_keys_from_before_still_count_after_the_upgrade(tmp_path: Path, layout: str) -> None:
    with duckdb.connect(str(tmp_path / "hold.duckdb")) as con:
        con.execute(KEYS_MD5 if layout == "hashed with md5" else KEYS_BEFORE)
        if layout == "scoped by warehouse":
            con.execute(
                "ALTER TABLE dedupe_keys ADD COLUMN warehouse VARCHAR; UPDATE dedupe_keys SET warehouse = 'duckdb:///w.duckdb'"
            )

    with HoldStore(HoldLayout(tmp_path)) as store:
        found = store.find_duplicates("duckdb:///w.duckdb", "things", pl.Series(["x", "y", "z"]))
        assert found.staged.to_list() == [True, True, False] and found.owners == {"old"}
        elsewhere = store.find_duplicates("duckdb:///other.duckdb", "things", pl.Series(["x"]))
        assert elsewhere.staged.to_list() == [False], "the keys keep their warehouse"
        ignoring = store.find_duplicates("duckdb:///w.duckdb", "things", pl.Series(["x", "y"]), ("old", 1))
        assert ignoring.staged.to_list() == [True, False], "and their batch"
