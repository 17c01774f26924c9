"""Verification compares the warehouse's per-batch rows and row-hash sums with HOLD₂'s ledger."""

from __future__ import annotations

from bqhold.tasks.core.verify import ABSENT, Fingerprint, Mismatch, claim, compare


def counts(**batches: int) -> dict[int, Fingerprint]:
    return {int(name[1:]): Fingerprint(rows) for name, rows in batches.items()}


def test_equal_counts_verify():
    result = compare(counts(b0=10, b1=5), counts(b0=10, b1=5))

    assert result.ok
    assert (result.expected_rows, result.actual_rows) == (15, 15)
    assert result.describe() == "verified: the warehouse holds 15 rows for the run, as HOLD₂'s ledger says"


def test_different_count_in_one_batch_is_a_mismatch():
    result = compare(counts(b0=10, b1=5), counts(b0=10, b1=4))

    assert not result.ok
    assert result.mismatches == (Mismatch(1, Fingerprint(5), Fingerprint(4)),)
    assert result.mismatched_batches == [1] and result.matching_batches == [0]


def test_batch_missing_from_the_warehouse_holds_no_row_there():
    result = compare(counts(b0=10, b1=5), counts(b0=10))

    assert result.mismatches == (Mismatch(1, Fingerprint(5), ABSENT),)
    assert result.actual_rows == 10


def test_a_staged_batch_without_rows_needs_none_in_the_warehouse():
    assert compare({0: Fingerprint(0, 0), 1: Fingerprint(3, 9)}, {1: Fingerprint(3, 9)}).ok


def test_same_count_with_another_row_hash_sum_is_content_that_differs():
    result = compare({0: Fingerprint(30, 1234)}, {0: Fingerprint(30, 999)})

    assert result.mismatched_batches == [0]
    assert "batch 0: content differs" in result.describe()


def test_a_ledger_entry_without_a_sum_is_checked_by_count_only():
    assert compare({0: Fingerprint(30, None)}, {0: Fingerprint(30, 999)}).ok
    assert compare({0: Fingerprint(30, None)}, {0: Fingerprint(30, None)}).ok


def test_rows_that_should_have_hashes_and_have_none_differ():
    assert not compare({0: Fingerprint(30, 1234)}, {0: Fingerprint(30, None)}).ok


def test_a_batch_only_in_the_warehouse_is_foreign_and_not_reloaded():
    result = compare(counts(b0=10), counts(b0=10, b7=3))

    assert result.mismatches == (Mismatch(7, None, Fingerprint(3)),)
    assert result.mismatched_batches == [] and result.matching_batches == [0]
    assert "batch 7, not in HOLD₂'s ledger: 3 rows" in result.describe()


def test_rows_without_a_batch_are_foreign_and_named_first():
    result = compare(counts(b0=10, b1=5), {0: Fingerprint(10), 1: Fingerprint(4), None: Fingerprint(1)})

    assert [m.batch for m in result.mismatches] == [None, 1]
    assert result.describe().split("(")[1].startswith("1 row without a batch; batch 1: 5 staged, 4 in the warehouse")
    assert result.mismatched_batches == [1]


def test_same_total_with_rows_in_the_wrong_batches_is_not_verified():
    result = compare(counts(b0=10, b1=10), counts(b0=15, b1=5))

    assert result.expected_rows == result.actual_rows
    assert not result.ok


def test_empty_on_both_sides_verifies():
    assert compare({}, {}).ok


def test_failed_description_names_batches_and_says_hold2_is_kept():
    text = compare(counts(b0=1000, b1=5), counts(b0=999, b1=5)).describe()

    assert text.startswith("NOT verified")
    assert "batch 0: 1,000 staged, 999 in the warehouse" in text
    assert "1,005" in text and "999" in text
    assert "HOLD₂ is kept" in text


def test_failed_description_shows_three_batches_and_counts_the_rest():
    text = compare({b: Fingerprint(1) for b in range(5)}, {}).describe()

    assert "batch 2:" in text and "batch 3:" not in text
    assert "and 2 more" in text


def test_mismatches_are_listed_in_batch_order():
    result = compare(counts(b5=1, b2=1, b9=1), {})

    assert [m.batch for m in result.mismatches] == [2, 5, 9]


def test_claim_takes_batches_held_exactly_as_staged_and_names_the_rest_foreign():
    expected = {0: Fingerprint(10, 100), 1: Fingerprint(10, 200), 2: Fingerprint(5, 50)}
    present = {0: Fingerprint(10, 100), 1: Fingerprint(10, 201), 9: Fingerprint(2, 7), None: Fingerprint(1)}

    result = claim(expected, present, recorded=set())

    assert result.found == (0,)
    assert [m.batch for m in result.foreign] == [None, 1, 9]


def test_claim_ignores_batches_hold2_recorded_as_loaded():
    result = claim({0: Fingerprint(10, 100)}, {0: Fingerprint(20, 300)}, recorded={0})

    assert result.found == () and result.foreign == ()
