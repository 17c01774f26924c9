"""Load planning: few loads of consecutive batches, empty batches apart, names a retry finds again."""

from __future__ import annotations

from bqhold.tasks.core.checkpoint import Counters
from bqhold.tasks.core.ledger import LedgerEntry
from bqhold.tasks.core.load_plan import load_id_for, plan_loads
from bqhold.tasks.core.records import Position

RUN = "run-1"
HOLD = "0123abcd"


def entry(batch: int, rows: int = 10, load_id: str | None = None) -> LedgerEntry:
    return LedgerEntry(
        run_id=RUN,
        batch=batch,
        segment=f"runs/{RUN}/segments/batch-{batch:06d}.jsonl",
        quarantine=None,
        counters=Counters(rows, rows, 0, 0),
        end=Position(0, batch, batch),
        input_done=False,
        load_id=load_id,
    )


def test_load_id_is_deterministic_and_names_the_batch_range():
    assert load_id_for("run-1", 3, 12) == "run-1-b000003-000012"


def test_all_batches_fit_one_load():
    groups, empty = plan_loads([entry(0), entry(1), entry(2)], HOLD)

    [group] = groups
    assert group.batches == (0, 1, 2)
    assert group.rows == 30
    assert group.load_id == "run-1-b000000-000002"
    assert group.hold_id == HOLD
    assert group.segments == tuple(f"runs/run-1/segments/batch-{b:06d}.jsonl" for b in range(3))
    assert empty == []


def test_batches_are_grouped_by_max_batches_in_order():
    groups, _ = plan_loads([entry(b) for b in range(7)], HOLD, max_batches=3)

    assert [g.batches for g in groups] == [(0, 1, 2), (3, 4, 5), (6,)]
    assert [g.load_id for g in groups] == ["run-1-b000000-000002", "run-1-b000003-000005", "run-1-b000006-000006"]


def test_entry_order_does_not_change_the_plan():
    entries = [entry(b) for b in range(5)]

    assert plan_loads(entries[::-1], HOLD, max_batches=2) == plan_loads(entries, HOLD, max_batches=2)


def test_empty_batches_are_listed_apart_and_not_loaded():
    groups, empty = plan_loads([entry(0), entry(1, rows=0), entry(2), entry(3, rows=0)], HOLD)

    assert [g.batches for g in groups] == [(0, 2)]
    assert groups[0].rows == 20
    assert empty == [1, 3]


def test_only_empty_batches_give_no_loads():
    groups, empty = plan_loads([entry(0, rows=0)], HOLD)

    assert groups == []
    assert empty == [0]


def test_already_loaded_batches_are_not_planned_again():
    groups, _ = plan_loads([entry(0, load_id="x"), entry(1, load_id="x"), entry(2), entry(3)], HOLD)

    assert [g.batches for g in groups] == [(2, 3)]
    assert groups[0].load_id == "run-1-b000002-000003"


def test_nothing_to_load():
    assert plan_loads([], HOLD) == ([], [])
