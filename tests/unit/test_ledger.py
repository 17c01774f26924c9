"""The ledger is the authority: the checkpoint it implies, and reconciling a saved one with it."""

from __future__ import annotations

from dataclasses import replace

from bqhold.tasks.core.checkpoint import Checkpoint, Counters, Phase
from bqhold.tasks.core.ledger import LedgerEntry, reconcile, tip_checkpoint
from bqhold.tasks.core.records import Position

RUN, FP = "run-1", "fp"


def entry(batch: int, rows: int = 10, input_done: bool = False) -> LedgerEntry:
    """Batch `batch` of `rows` records: 1 quarantined, 1 duplicate, the rest written."""
    return LedgerEntry(
        run_id=RUN,
        batch=batch,
        segment=f"runs/{RUN}/segments/batch-{batch:06d}.jsonl",
        quarantine=None,
        counters=Counters(rows, rows - 2, 1, 1),
        end=Position(0, (batch + 1) * 1000, (batch + 1) * rows),
        input_done=input_done,
    )


def test_empty_ledger_implies_a_fresh_checkpoint():
    implied = tip_checkpoint(RUN, FP, [], batch_size=500)

    assert implied == Checkpoint(run_id=RUN, fingerprint=FP, batch_size=500)
    assert implied.next_batch == 0 and implied.position == Position()


def test_tip_points_after_the_last_batch_with_summed_counters():
    implied = tip_checkpoint(RUN, FP, [entry(0), entry(1), entry(2)], batch_size=500)

    assert implied.next_batch == 3
    assert implied.position == Position(0, 3000, 30)
    assert implied.counters == Counters(30, 24, 3, 3)
    assert implied.phase is Phase.STAGING
    assert not implied.input_done


def test_tip_does_not_depend_on_entry_order():
    in_order = tip_checkpoint(RUN, FP, [entry(0), entry(1), entry(2)], 500)

    assert tip_checkpoint(RUN, FP, [entry(2), entry(0), entry(1)], 500) == in_order


def test_tip_after_the_last_input_batch_is_loading():
    implied = tip_checkpoint(RUN, FP, [entry(0), entry(1, input_done=True)], 500)

    assert implied.input_done
    assert implied.phase is Phase.LOADING


def test_missing_checkpoint_takes_the_ledgers_without_a_note():
    implied = tip_checkpoint(RUN, FP, [entry(0)], 500)

    assert reconcile(None, implied) == (implied, None)


def test_agreeing_checkpoint_is_kept_without_a_note():
    implied = tip_checkpoint(RUN, FP, [entry(0), entry(1)], 500)
    saved = replace(implied, batch_size=125)

    chosen, note = reconcile(saved, implied)

    assert chosen == saved
    assert note is None


def test_agreeing_checkpoint_keeps_a_later_phase_it_recorded():
    implied = tip_checkpoint(RUN, FP, [entry(0, input_done=True)], 500)
    saved = replace(implied, phase=Phase.UNVERIFIED)

    chosen, note = reconcile(saved, implied)

    assert chosen.phase is Phase.UNVERIFIED
    assert note is None


def test_agreeing_staging_checkpoint_moves_to_loading_when_input_is_done():
    implied = tip_checkpoint(RUN, FP, [entry(0, input_done=True)], 500)
    saved = replace(implied, phase=Phase.STAGING)

    chosen, _ = reconcile(saved, implied)

    assert chosen.phase is Phase.LOADING


def test_checkpoint_one_batch_behind_the_ledger_defers_to_the_ledger_with_a_note():
    """A crash between the ledger commit and the checkpoint write."""
    behind = tip_checkpoint(RUN, FP, [entry(0), entry(1)], 500)
    behind = replace(behind, batch_size=250)
    implied = tip_checkpoint(RUN, FP, [entry(0), entry(1), entry(2)], 500)

    chosen, note = reconcile(behind, implied)

    assert chosen.next_batch == 3
    assert chosen.position == implied.position
    assert chosen.counters == implied.counters
    assert chosen.batch_size == 250  # the guard's last size survives
    assert "batch 2" in note and "3" in note and "ledger" in note


def test_checkpoint_ahead_of_the_ledger_also_defers_to_the_ledger():
    ahead = tip_checkpoint(RUN, FP, [entry(0), entry(1), entry(2)], 500)
    implied = tip_checkpoint(RUN, FP, [entry(0), entry(1)], 500)

    chosen, note = reconcile(ahead, implied)

    assert chosen.next_batch == 2
    assert note is not None


def test_checkpoint_with_other_counters_defers_to_the_ledger():
    implied = tip_checkpoint(RUN, FP, [entry(0)], 500)
    saved = replace(implied, counters=Counters(1, 1, 0, 0))

    chosen, note = reconcile(saved, implied)

    assert chosen.counters == implied.counters
    assert note is not None
