"""Verification compares the warehouse's per-batch counts with HOLD₂'s ledger."""

from __future__ import annotations

from tasks.core.verify import compare_counts


def test_equal_counts_verify():
    result = compare_counts({0: 10, 1: 5}, {0: 10, 1: 5})

    assert result.ok
    assert (result.expected_rows, result.actual_rows) == (15, 15)
    assert result.describe() == "verified: the warehouse holds 15 rows for the run, as HOLD₂'s ledger says"


def test_different_count_in_one_batch_is_a_mismatch():
    result = compare_counts({0: 10, 1: 5}, {0: 10, 1: 4})

    assert not result.ok
    assert result.mismatches == ((1, 5, 4),)


def test_batch_missing_from_the_warehouse_counts_as_zero():
    result = compare_counts({0: 10, 1: 5}, {0: 10})

    assert result.mismatches == ((1, 5, 0),)
    assert result.actual_rows == 10


def test_batch_only_in_the_warehouse_is_a_mismatch():
    result = compare_counts({0: 10}, {0: 10, 7: 3})

    assert result.mismatches == ((7, 0, 3),)


def test_same_total_with_rows_in_the_wrong_batches_is_not_verified():
    result = compare_counts({0: 10, 1: 10}, {0: 15, 1: 5})

    assert result.expected_rows == result.actual_rows
    assert not result.ok


def test_empty_on_both_sides_verifies():
    assert compare_counts({}, {}).ok


def test_failed_description_names_batches_and_says_hold2_is_kept():
    text = compare_counts({0: 1000, 1: 5}, {0: 999, 1: 5}).describe()

    assert text.startswith("NOT verified")
    assert "batch 0: 1,000 staged, 999 in the warehouse" in text
    assert "1,005" in text and "999" in text
    assert "HOLD₂ is kept" in text


def test_failed_description_shows_three_batches_and_counts_the_rest():
    text = compare_counts({b: 1 for b in range(5)}, {}).describe()

    assert "batch 2:" in text and "batch 3:" not in text
    assert "and 2 more" in text


def test_mismatches_are_listed_in_batch_order():
    result = compare_counts({5: 1, 2: 1, 9: 1}, {})

    assert [m[0] for m in result.mismatches] == [2, 5, 9]
