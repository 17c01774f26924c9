"""Prefect tasks: load HOLD₂ into the warehouse group by group, then verify the run."""

from __future__ import annotations

from collections.abc import Callable

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from bqhold.tasks.core import faults
from bqhold.tasks.core.checkpoint import Phase
from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.errors import ConfigError, VerificationFailed
from bqhold.tasks.core.ledger import LedgerEntry
from bqhold.tasks.core.load_plan import EMPTY_LOAD, FOUND_LOAD, LoadGroup, plan_loads
from bqhold.tasks.core.staging import META_COLUMNS
from bqhold.tasks.core.verify import ReliedOnRun, Verification, claim, compare
from bqhold.tasks.core.write_modes import WriteMode, key_path, staging_table, through_staging
from bqhold.tasks.retry_condition import TASK_RETRIES
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.seals import check_sealed, damaged_error
from bqhold.tasks.warehouses.base import Warehouse


@task(
    name="load-group",
    cache_policy=NO_CACHE,
    **TASK_RETRIES,
)
def load_group(
    store: HoldStore, warehouse: Warehouse, table: str, schema: Schema, group: LoadGroup, delivery: int = 0
) -> int:
    """Load one group of segment files (idempotent), then record it in HOLD₂'s ledger."""
    files = [store.layout.root / segment for segment in group.segments]
    loaded = warehouse.load(table, schema, group, files, delivery)
    faults.reached("load_committed", group.batches[-1])
    store.record_load(group.run_id, group.load_id, list(group.batches), warehouse.describe(), delivery)
    faults.reached("load_recorded", group.batches[-1])
    if loaded != group.rows:
        get_run_logger().warning(
            "load %s: %s rows expected, the warehouse holds %s", group.load_id, f"{group.rows:,}", f"{loaded:,}"
        )
    return loaded


def _load_entries(
    store: HoldStore,
    warehouse: Warehouse,
    table: str,
    entries: list[LedgerEntry],
    delivery: int,
    between_groups: Callable[[str], None],
) -> None:
    """Load the given unloaded ledger entries in groups sized for the warehouse."""
    if not entries:
        return
    run_id = entries[0].run_id
    # The run's staged columns, whatever table it is delivered to (redeliver --table may name another).
    schema = META_COLUMNS | store.staged_schema(store.get_run(run_id).job.table)
    pending = [e for e in entries if e.load_id is None]
    sizes = {e.batch: segment_size(store, e) for e in pending if e.counters.rows_written}
    groups, empty = plan_loads(entries, store.hold_id, max_bytes=warehouse.max_group_bytes, sizes=sizes)
    if empty:
        store.record_load(run_id, EMPTY_LOAD, empty, warehouse.describe(), delivery)
    by_batch = {e.batch: e for e in pending}
    for group in groups:
        for batch in group.batches:  # just before the load reads them, so the page cache serves both
            check_sealed(store, by_batch[batch])
        load_group(store, warehouse, table, schema, group, delivery)
        between_groups(f"after loading {group.load_id}")


def segment_size(store: HoldStore, entry: LedgerEntry) -> int:
    """The segment's size for grouping loads (a damaged-segment error if it is gone)."""
    try:
        return store.segment_path(entry).stat().st_size
    except FileNotFoundError as exc:
        raise damaged_error(entry, "it is missing", store.layout.root) from exc


def _take_what_is_there(
    store: HoldStore, warehouse: Warehouse, table: str, run_id: str, entries: list[LedgerEntry], delivery: int
) -> list[LedgerEntry]:
    """Before loading: the run's rows the warehouse holds though HOLD₂ has no record of loading them.

    Batches held exactly as staged are this hold dir's load, cut off before it was recorded:
    they are recorded now, not loaded twice. Any other rows under the run's id, before the run
    loaded anything, are another hold dir's run of the same id: refused, nothing touched.
    """
    present = warehouse.fingerprints(table, run_id)
    if not present:
        return entries
    recorded = {entry.batch for entry in entries if entry.load_id is not None}
    held = claim(store.fingerprints(run_id), present, recorded)
    if held.foreign and not recorded:
        shown = "; ".join(mismatch.describe() for mismatch in held.foreign[:3])
        raise ConfigError(
            f"table {table} in {warehouse.describe()} already holds rows of run {run_id} that this hold dir did "
            f"not load ({shown}): another hold dir delivered a run of that id there. Nothing was loaded; "
            "choose another --run-id"
        )
    if not held.found:
        return entries
    get_run_logger().info(
        "run %s: the warehouse already holds batch(es) %s exactly as staged; recorded as loaded",
        run_id,
        ", ".join(map(str, held.found)),
    )
    store.record_load(run_id, FOUND_LOAD, list(held.found), warehouse.describe(), delivery)
    return store.ledger(run_id, warehouse.describe(), delivery)


def load_pending(
    store: HoldStore,
    warehouse: Warehouse,
    table: str,
    run_id: str,
    delivery: int = 0,
    between_groups: Callable[[str], None] = lambda where: None,
) -> None:
    """Load every batch of the run that this delivery has not loaded yet.

    `between_groups` is called after each recorded group (where a graceful stop may happen).
    """
    entries = store.ledger(run_id, warehouse.describe(), delivery)
    if any(entry.load_id is None for entry in entries):
        entries = _take_what_is_there(store, warehouse, table, run_id, entries, delivery)
    _load_entries(store, warehouse, table, entries, delivery, between_groups)


@task(name="redeliver-batches", cache_policy=NO_CACHE)
def redeliver_batches(
    store: HoldStore, warehouse: Warehouse, table: str, run_id: str, verification: Verification
) -> int:
    """Repair what verification found as a new delivery: remove the run's rows outside the
    batches that match (foreign rows included), then load the mismatched batches again from
    HOLD₂; returns the delivery number used."""
    delivery = store.last_delivery(run_id) + 1
    warehouse.remove(table, run_id, verification.matching_batches)
    wanted = set(verification.mismatched_batches)
    entries = [e for e in store.ledger(run_id, warehouse.describe(), delivery) if e.batch in wanted]
    _load_entries(store, warehouse, table, entries, delivery, lambda where: None)
    return delivery


@task(
    name="verify-run",
    cache_policy=NO_CACHE,
    **TASK_RETRIES,
)
def verify_run(
    store: HoldStore, warehouse: Warehouse, table: str, run_id: str, superseded_ok: bool = False
) -> Verification:
    """Compare the warehouse's rows and row-hash sums per batch with HOLD₂'s ledger (with
    `superseded_ok`, fewer rows are fine: a later merge or replace took them)."""
    verification = compare(store.fingerprints(run_id), warehouse.fingerprints(table, run_id), superseded_ok)
    faults.reached("verified")
    return verification


def publish_run(
    store: HoldStore,
    warehouse: Warehouse,
    table: str,
    run_id: str,
    mode: WriteMode,
    key: str | None,
    between_groups: Callable[[str], None] = lambda where: None,
) -> None:
    """A merge or replace: load the run into its staging table, verify it there, then make the
    table hold it (docs/design.md, Write modes). Every step may be done again after a crash:
    loads are recorded per group, the staging table stays until the run is delivered, and the
    MERGE or copy gives the same table twice."""
    staging = staging_table(table, run_id)
    load_pending(store, warehouse, staging, run_id, between_groups=between_groups)
    staged = verify_run(store, warehouse, staging, run_id)
    if not staged.ok:
        raise VerificationFailed(f"run {run_id}'s staging table {staging}: {staged.describe()}")
    schema = META_COLUMNS | store.staged_schema(table)
    path = key_path(schema, key) if mode == "merge" and key else None
    warehouse.publish(mode, table, staging, schema, path)
    faults.reached("published")
    rows, keys = warehouse.table_counts(table, path)
    if mode == "replace" and rows != staged.expected_rows:
        raise VerificationFailed(
            f"NOT verified: after replacing, table {table} holds {rows:,} rows, run {run_id} staged "
            f"{staged.expected_rows:,}; HOLD₂ is kept"
        )
    if mode == "merge" and keys != rows:
        raise VerificationFailed(
            f"NOT verified: after merging, table {table} holds {rows:,} rows for {keys:,} keys ({key}); HOLD₂ is kept"
        )


def check_relied_on(
    store: HoldStore, warehouse: Warehouse, roots: list[str], own: str | None = None
) -> list[ReliedOnRun]:
    """Verify `roots` and, transitively, the runs whose keys made them skip records (never `own`).

    Runs still staging or loading are reported as pending: their records wait in HOLD₂.
    """
    checked: list[ReliedOnRun] = []
    runs = {run.run_id: run for run in store.runs()}  # read once, not once per run followed
    seen = {own}
    queue = list(roots)
    while queue:
        run_id = queue.pop(0)
        if run_id in seen:
            continue
        seen.add(run_id)
        run = runs.get(run_id)
        if run is None or run.status is Phase.ABANDONED:
            continue
        if run.status in (Phase.STAGING, Phase.LOADING):
            checked.append(ReliedOnRun(run_id, None))
        else:
            superseded_ok = through_staging(run.job.write_mode)
            verification = verify_run(store, warehouse, run.job.table, run_id, superseded_ok)
            checked.append(ReliedOnRun(run_id, verification, cleaned=run.status is Phase.CLEANED))
        queue.extend(store.dependencies(run_id))
    return checked
