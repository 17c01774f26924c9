"""Prefect tasks: load HOLD₂ into the warehouse group by group, then verify the run."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from tasks.core import faults
from tasks.core.load_plan import EMPTY_LOAD, LoadGroup, plan_loads
from tasks.core.verify import Verification, compare_counts
from tasks.storage.hold_store import META_COLUMNS, HoldStore
from tasks.warehouses.base import Warehouse


@task(name="load-group", cache_policy=NO_CACHE)
def load_group(store: HoldStore, warehouse: Warehouse, table: str, group: LoadGroup) -> int:
    """Load one group of segment files (idempotent), then record it in HOLD₂'s ledger."""
    schema = META_COLUMNS | store.staged_schema(table)
    files = [store.layout.root / segment for segment in group.segments]
    loaded = warehouse.load(table, schema, group, files)
    faults.reached("load_committed", group.batches[-1])
    store.record_load(group.run_id, group.load_id, list(group.batches))
    faults.reached("load_recorded", group.batches[-1])
    if loaded != group.rows:
        get_run_logger().warning("load %s: %s rows expected, the warehouse holds %s", group.load_id, f"{group.rows:,}", f"{loaded:,}")
    return loaded


def load_pending(store: HoldStore, warehouse: Warehouse, table: str, run_id: str) -> int:
    """Load every batch of the run that the warehouse does not hold yet; return groups loaded."""
    groups, empty = plan_loads(store.ledger(run_id))
    if empty:
        store.record_load(run_id, EMPTY_LOAD, empty)
    for group in groups:
        load_group(store, warehouse, table, group)
    return len(groups)


@task(name="verify-run", cache_policy=NO_CACHE)
def verify_run(store: HoldStore, warehouse: Warehouse, table: str, run_id: str) -> Verification:
    """Compare the warehouse's counts per batch with HOLD₂'s ledger."""
    expected = {entry.batch: entry.counters.rows_written for entry in store.ledger(run_id)}
    verification = compare_counts(expected, warehouse.counts(table, run_id))
    faults.reached("verified")
    return verification
