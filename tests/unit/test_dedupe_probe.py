"""HOLD₂'s dedupe probe on a real DuckDB file: a key counts as staged only when the exact key is
stored for the table and warehouse; a key that merely shares its 64-bit hash does not."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from bqhold.tasks.core.key_hash import hash_keys
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.storage.hold_store import HoldStore

TABLE, WAREHOUSE = "events", "duckdb:///w.duckdb"


@pytest.fixture
def store(tmp_path: Path):
    with HoldStore(HoldLayout(tmp_path)) as opened:
        yield opened


def stage_key(store: HoldStore, key: str, run_id: str, batch: int = 0, hash_of: str | None = None, **scope) -> None:
    """Store `key` in dedupe_keys as `run_id` did, with the hash of `hash_of` (a forced collision) if given."""
    keys = pl.DataFrame({"key": [key], "key_hash": hash_keys(pl.Series([hash_of or key]))})
    store.store_keys(scope.get("table", TABLE), scope.get("warehouse", WAREHOUSE), run_id, batch, keys)


def probe(store: HoldStore, *keys: str, ignoring: tuple[str, int] = ("", -1)) -> tuple[list[bool], set[str]]:
    """Which of `keys` the probe calls staged, and the runs that staged them."""
    found = store.find_duplicates(WAREHOUSE, TABLE, pl.Series(list(keys)), ignoring)
    return found.staged.to_list(), set(found.owners)


def test_a_key_sharing_only_its_hash_with_a_stored_key_is_not_a_duplicate(store: HoldStore):
    stage_key(store, "someone-else", "r1", hash_of="k")  # same stored hash as "k", another key

    assert probe(store, "k") == ([False], set())


def test_with_a_collision_and_the_true_key_stored_only_the_true_key_counts(store: HoldStore):
    stage_key(store, "someone-else", "r1", hash_of="k")
    stage_key(store, "k", "r2")

    assert probe(store, "k", "new") == ([True, False], {"r2"}), "r1's colliding key made nothing skip"


def test_the_hashes_handed_back_are_the_ones_a_later_probe_matches(store: HoldStore):
    found = store.find_duplicates(WAREHOUSE, TABLE, pl.Series(["a", "b"]))
    store.store_keys(TABLE, WAREHOUSE, "r1", 0, pl.DataFrame({"key": ["a", "b"], "key_hash": found.hashes}))

    assert probe(store, "a", "b", "c") == ([True, True, False], {"r1"})


def test_keys_of_another_table_or_warehouse_do_not_count(store: HoldStore):
    stage_key(store, "k", "r1", table="other")
    stage_key(store, "k", "r2", warehouse="duckdb:///elsewhere.duckdb")

    assert probe(store, "k") == ([False], set())


def test_the_batch_being_staged_again_does_not_count_its_own_keys(store: HoldStore):
    stage_key(store, "mine", "r1", batch=3)
    stage_key(store, "earlier", "r1", batch=2)

    assert probe(store, "mine", "earlier", ignoring=("r1", 3)) == ([False, True], {"r1"})


def test_an_empty_batch_finds_nothing(store: HoldStore):
    stage_key(store, "k", "r1")

    assert probe(store) == ([], set())
