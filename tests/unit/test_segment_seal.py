"""A segment is loaded only as its batch committed it: size and crc32c, checked before every load."""

from __future__ import annotations

from pathlib import Path

import pytest

from bqhold.tasks.core.checkpoint import Counters
from bqhold.tasks.core.errors import HoldDamaged
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.ledger import LedgerEntry
from bqhold.tasks.core.records import Position
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.seals import check_sealed, seal_of, segment_problem

ROWS = b'{"id":1}\n{"id":2}\n{"id":3}\n'


@pytest.fixture
def sealed(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    segment = layout.segment("run-1", 4, "jsonl")
    segment.parent.mkdir(parents=True)
    segment.write_bytes(ROWS)
    entry = LedgerEntry(
        run_id="run-1",
        batch=4,
        segment=str(segment.relative_to(tmp_path)),
        quarantine=None,
        counters=Counters(3, 3, 0, 0),
        end=Position(0, 30, 3),
        input_done=True,
        seal=seal_of(segment),
    )
    with HoldStore(layout) as store:
        yield store, entry, segment


def test_an_untouched_segment_passes(sealed):
    store, entry, _ = sealed
    assert segment_problem(store, entry) is None
    check_sealed(store, entry)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda path: path.unlink(), "it is missing"),
        (lambda path: path.write_bytes(ROWS[:10]), "it has 10 bytes, 27 were committed"),
        (lambda path: path.write_bytes(ROWS + b"garbage\n"), "it has 35 bytes, 27 were committed"),
        (lambda path: path.write_bytes(ROWS.replace(b"2", b"7")), "crc32c mismatch"),
    ],
    ids=["deleted", "truncated", "garbage-appended", "same-size-edit"],
)
def test_a_damaged_segment_is_named_with_the_way_to_repair_it(sealed, damage, expected):
    store, entry, segment = sealed
    damage(segment)

    with pytest.raises(HoldDamaged) as info:
        check_sealed(store, entry)

    message = str(info.value)
    assert expected in message
    assert "batch-000004.jsonl" in message and "repair --run-id run-1" in message
    assert info.value.exit_code == 2, "re-running alone cannot fix it: no promise of a resume"


def test_a_segment_sealed_before_seals_existed_is_only_checked_for_presence(sealed):
    store, entry, segment = sealed
    unsealed = LedgerEntry(**{**entry.__dict__, "seal": None})
    segment.write_bytes(b"anything")
    assert segment_problem(store, unsealed) is None
    segment.unlink()
    assert segment_problem(store, unsealed) == "it is missing"
