"""prepare_batch: transform, flatten, conform, dedupe and count — every record accounted for."""

from __future__ import annotations

import json
from array import array
from datetime import UTC, datetime

import polars as pl
import pytest

from bqhold.tasks.core.column_types import ArrayType, ColumnType, RecordType
from bqhold.tasks.core.errors import ConfigError, DataErrorRateExceeded, InputError
from bqhold.tasks.core.flatten import flatten
from bqhold.tasks.core.records import INTERNAL_COLUMNS, Position, QuarantineEntry, RawBatch, RecordFormat, Spans
from bqhold.tasks.core.staging import META_COLUMNS, BatchContext, KeyProbe, prepare_batch, row_hashes

LOADED_AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def raw_batch(rows: list[dict], quarantined: list[QuarantineEntry] = (), lines: list[int] | None = None) -> RawBatch:
    """A RawBatch as a reader returns it: records with __line (1..n unless given), plus rejected ones."""
    frame = pl.DataFrame(rows).with_columns(pl.Series("__line", lines or range(1, len(rows) + 1), dtype=pl.Int64))
    return RawBatch(
        frame=frame,
        quarantined=list(quarantined),
        start=Position(),
        end=Position(0, 100, len(rows)),
        records_read=len(rows) + len(quarantined),
        bytes_read=100,
    )


def context(key: str | None = None, max_error_rate: float = 0.05, batch: int = 3, **more) -> BatchContext:
    return BatchContext(
        run_id="run-1",
        batch=batch,
        source="in.jsonl",
        loaded_at=LOADED_AT,
        key=key,
        max_error_rate=max_error_rate,
        **more,
    )


def staged_lookup(keys: set[str]):
    """The injected 'already staged?' question, answered from a plain Python set."""
    return lambda series: KeyProbe(series.is_in(sorted(keys)), pl.Series(range(series.len()), dtype=pl.UInt64))


NOTHING_STAGED = staged_lookup(set())


def identity(frame: pl.DataFrame) -> pl.DataFrame:
    return frame


def prepare(raw: RawBatch, transform=identity, known=None, ctx=None, already_staged=NOTHING_STAGED):
    return prepare_batch(raw, transform, dict(known or {}), ctx or context(), already_staged)


def assert_every_record_accounted_for(prepared) -> None:
    c = prepared.counters
    assert c.rows_read == c.rows_written + c.rows_quarantined + c.duplicates_skipped


def test_rows_carry_run_batch_load_time_and_content_hash_but_not_the_source_line():
    prepared = prepare(raw_batch([{"a": 1}, {"a": 2}]))

    assert prepared.rows.columns == ["a", "_run_id", "_batch", "_loaded_at", "_row_hash"]
    assert prepared.rows["_row_hash"].to_list() == row_hashes(pl.DataFrame({"a": [1, 2]})).to_list()
    assert prepared.rows["_run_id"].to_list() == ["run-1", "run-1"]
    assert prepared.rows["_batch"].to_list() == [3, 3]
    assert prepared.rows["_loaded_at"].to_list() == [LOADED_AT, LOADED_AT]
    assert prepared.rows.schema["_loaded_at"] == pl.Datetime("us", "UTC")


def test_nested_records_are_records_arrays_arrays_and_new_columns_reported_with_their_types():
    prepared = prepare(raw_batch([{"user": {"id": 1, "name": "x"}, "tags": ["a"], "at": "2026-11-30T10:00:00Z"}]))

    assert prepared.rows.select("user", "tags").to_dicts() == [{"user": {"id": 1, "name": "x"}, "tags": ["a"]}]
    assert prepared.new_columns == {
        "user": RecordType((("id", ColumnType.INT64), ("name", ColumnType.STRING))),
        "tags": ArrayType(ColumnType.STRING),
        "at": ColumnType.TIMESTAMP,
    }


def test_flattened_nested_records_become_columns():
    prepared = prepare(raw_batch([{"user": {"id": 1, "name": "x"}}]), ctx=context(nesting="flatten"))

    assert prepared.rows.select("user__id", "user__name").to_dicts() == [{"user__id": 1, "user__name": "x"}]
    assert prepared.new_columns == {"user__id": ColumnType.INT64, "user__name": ColumnType.STRING}


def test_duplicate_keys_within_a_batch_keep_the_first_occurrence():
    rows = [{"id": 1, "v": "first"}, {"id": 2, "v": "x"}, {"id": 1, "v": "second"}, {"id": 1, "v": "third"}]

    prepared = prepare(raw_batch(rows), ctx=context(key="id"))

    assert prepared.rows.select("id", "v").to_dicts() == [{"id": 1, "v": "first"}, {"id": 2, "v": "x"}]
    assert prepared.counters.duplicates_skipped == 2
    assert prepared.keys.to_list() == ["1", "2"]


def test_keys_already_staged_are_skipped_and_counted():
    rows = [{"id": n} for n in range(1, 6)]

    prepared = prepare(raw_batch(rows), ctx=context(key="id"), already_staged=staged_lookup({"2", "4"}))

    assert prepared.rows["id"].to_list() == [1, 3, 5]
    assert prepared.keys.to_list() == ["1", "3", "5"]
    assert prepared.counters.duplicates_skipped == 2
    assert_every_record_accounted_for(prepared)


def test_null_key_is_quarantined_as_missing_key_field():
    rows = [{"id": 1, "v": "a"}, {"id": None, "v": "b"}, {"id": 3, "v": "c"}]

    prepared = prepare(raw_batch(rows), ctx=context(key="id"))

    assert prepared.rows["id"].to_list() == [1, 3]
    [entry] = prepared.quarantined
    assert entry.line == 2
    assert entry.reason == "missing key field 'id'"
    assert entry.source == "in.jsonl"
    assert b'"v":"b"' in entry.record  # no source position: the row itself is kept


@pytest.mark.parametrize("nesting", ["record", "flatten", "json"])
def test_a_nested_key_dedupes_whether_its_object_is_a_record_columns_or_json(nesting):
    rows = [{"User": {"Id": 7}}, {"User": {"Id": 7}}, {"User": {"Id": 8}}]

    prepared = prepare(raw_batch(rows), ctx=context(key="User.Id", nesting=nesting))

    assert prepared.rows.height == 2 and prepared.counters.duplicates_skipped == 1
    assert prepared.keys.to_list() == ["7", "8"]
    expected_column = {"record": "user", "flatten": "user__id", "json": "user"}[nesting]
    assert expected_column in prepared.rows.columns


def test_key_field_absent_from_the_records_is_a_config_error():
    with pytest.raises(ConfigError, match="'order_id'.*--key"):
        prepare(raw_batch([{"id": 1}]), ctx=context(key="order_id"))


def test_batch_where_every_key_is_null_quarantines_the_rows():
    prepared = prepare(raw_batch([{"id": None, "v": "a"}, {"id": None, "v": "b"}]), ctx=context(key="id"))

    assert [entry.reason for entry in prepared.quarantined] == ["missing key field 'id'"] * 2


def test_all_null_keys_of_a_known_column_are_quarantined():
    prepared = prepare(raw_batch([{"id": None}, {"id": None}]), known={"id": ColumnType.INT64}, ctx=context(key="id"))

    assert prepared.rows.height == 0
    assert [entry.line for entry in prepared.quarantined] == [1, 2]
    assert_every_record_accounted_for(prepared)


def flag_bad(frame: pl.DataFrame) -> pl.DataFrame:
    """A transform that rejects rows whose `v` is 'bad'."""
    return frame.with_columns(
        pl.when(pl.col("v") == "bad").then(pl.lit("v must not be bad")).otherwise(None).alias("_quarantine_reason")
    )


def test_rows_a_transform_marks_are_quarantined_with_its_reason():
    prepared = prepare(raw_batch([{"v": "ok"}, {"v": "bad"}, {"v": "fine"}]), transform=flag_bad)

    assert prepared.rows["v"].to_list() == ["ok", "fine"]
    [entry] = prepared.quarantined
    assert (entry.line, entry.reason) == (2, "v must not be bad")
    assert "_quarantine_reason" not in prepared.rows.columns
    assert_every_record_accounted_for(prepared)


def test_values_that_clash_with_the_staged_schema_are_quarantined():
    prepared = prepare(raw_batch([{"n": "1"}, {"n": "abc"}]), known={"n": ColumnType.INT64})

    assert prepared.rows["n"].to_list() == [1]
    [entry] = prepared.quarantined
    assert entry.line == 2 and "'n'" in entry.reason and "abc" in entry.reason


def test_reader_quarantine_is_kept_and_merged_in_line_order():
    from_reader = [QuarantineEntry("in.jsonl", 2, 10, "malformed JSON", size=5)]
    raw = raw_batch([{"id": 1}, {"id": None}], quarantined=from_reader, lines=[1, 3])

    prepared = prepare(raw, ctx=context(key="id"))

    assert [(e.line, e.reason) for e in prepared.quarantined] == [(2, "malformed JSON"), (3, "missing key field 'id'")]
    assert prepared.counters.rows_quarantined == 2
    assert_every_record_accounted_for(prepared)


def test_error_rate_above_the_limit_stops_with_file_and_first_bad_line():
    rows = [{"v": "bad" if n in (4, 9) else "ok"} for n in range(20)]

    with pytest.raises(DataErrorRateExceeded) as info:
        prepare(raw_batch(rows), transform=flag_bad, ctx=context(max_error_rate=0.05))

    message = str(info.value)
    assert message.startswith("in.jsonl:")
    assert "2 of 20" in message and "batch 3" in message
    assert "first at line 5: v must not be bad" in message
    assert info.value.exit_code == 2


def test_error_rate_at_the_limit_goes_on():
    rows = [{"v": "bad" if n == 0 else "ok"} for n in range(20)]

    prepared = prepare(raw_batch(rows), transform=flag_bad, ctx=context(max_error_rate=0.05))

    assert prepared.counters.rows_quarantined == 1


def test_error_rate_is_not_judged_on_tiny_batches():
    rows = [{"v": "bad"}] * 5 + [{"v": "ok"}]

    prepared = prepare(raw_batch(rows), transform=flag_bad, ctx=context(max_error_rate=0.0))

    assert prepared.counters.rows_quarantined == 5


def test_duplicates_do_not_count_as_errors():
    rows = [{"id": 1}] * 30

    prepared = prepare(raw_batch(rows), ctx=context(key="id", max_error_rate=0.0))

    assert prepared.counters.duplicates_skipped == 29


def test_a_field_named_like_a_bqhold_column_is_staged_under_another_name():
    prepared = prepare(raw_batch([{"a": 1, "_batch": 7, "_Run_Id": "mine"}]))

    assert prepared.rows.row(0, named=True) | {"_loaded_at": None, "_row_hash": None} == {
        "a": 1,
        "f__batch": 7,
        "f__run_id": "mine",
        "_run_id": "run-1",
        "_batch": 3,
        "_loaded_at": None,
        "_row_hash": None,
    }


def test_a_record_with_two_fields_for_one_column_is_quarantined_with_its_line():
    prepared = prepare(raw_batch([{"id": 1, "Id": None}, {"id": 2, "Id": 2}, {"id": None, "Id": 3}]))

    assert prepared.rows["id"].to_list() == [1, 3]
    [entry] = prepared.quarantined
    assert entry.line == 2 and entry.reason.startswith("fields 'id' and 'Id' both become column 'id'")
    assert_every_record_accounted_for(prepared)


def test_string_columns_of_the_context_are_staged_as_text():
    ctx = BatchContext(run_id="run-1", batch=0, source="in.jsonl", loaded_at=LOADED_AT, text_columns=frozenset({"n"}))

    prepared = prepare(raw_batch([{"n": 5}]), known={"n": ColumnType.INT64}, ctx=ctx)

    assert prepared.rows["n"].to_list() == ["5"] and prepared.new_columns == {"n": ColumnType.STRING}


@pytest.mark.parametrize("transform", [identity, lambda f: flatten(f).frame], ids=["identity", "flatten"])
def test_counters_account_for_every_record_read(transform):
    quarantined = [QuarantineEntry("in.jsonl", 40, 0, "malformed JSON", size=2)]
    rows = [{"id": n % 7, "user": {"n": n}, "tags": [n]} for n in range(30)] + [
        {"id": None, "user": {"n": 0}, "tags": []}
    ]

    prepared = prepare(
        raw_batch(rows, quarantined),
        transform=transform,
        ctx=context(key="id", max_error_rate=1.0),
        already_staged=staged_lookup({"3"}),
    )

    assert_every_record_accounted_for(prepared)
    assert prepared.counters.rows_read == 32
    assert prepared.counters.rows_written == prepared.rows.height == 6
    assert prepared.counters.duplicates_skipped == 24


def test_empty_batch_gives_no_rows_and_zero_counters():
    raw = RawBatch(frame=pl.DataFrame(schema={"__line": pl.Int64}), records_read=0)

    prepared = prepare(raw, ctx=context(key="id"))

    assert prepared.rows.height == 0
    assert prepared.counters.rows_read == prepared.counters.rows_written == 0
    assert prepared.bytes_per_row == 0.0


def test_bytes_per_row_is_the_input_size_per_record():
    prepared = prepare(raw_batch([{"a": 1}] * 4))

    assert prepared.bytes_per_row == 25.0


def test_an_integer_beyond_int64_is_quarantined_naming_string_columns():
    prepared = prepare(raw_batch([{"a": 1}, {"a": 10**20}]))

    assert prepared.rows["a"].to_list() == [1]
    [entry] = prepared.quarantined
    assert entry.reason == f"field 'a': expected INT64, got {10**20} (--string-columns a would keep it as text)"


def test_row_hash_is_31_bits_of_the_content_whatever_the_column_order():
    rows = pl.DataFrame({"a": [1, 2, 1, None], "b": ["x", "y", "x", "z"]})

    hashes = row_hashes(rows)

    assert hashes.dtype == pl.Int64 and hashes.name == "_row_hash"
    assert all(0 <= h < 2**31 for h in hashes.to_list())
    assert hashes[0] == hashes[2] and len(set(hashes.to_list())) == 3, "equal rows hash alike, others apart"
    assert row_hashes(rows.select("b", "a")).to_list() == hashes.to_list()


def test_row_hash_does_not_depend_on_when_or_where_a_row_was_staged():
    first = prepare(raw_batch([{"a": 1}, {"a": 2}]), ctx=context(batch=3))
    again = prepare(raw_batch([{"a": 1}, {"a": 2}]), ctx=context(batch=8))

    assert first.rows["_row_hash"].to_list() == again.rows["_row_hash"].to_list()


def whole_file_batch(
    quarantined: int, good: int = 0, start: Position | None = None, exhausted: bool = True
) -> RawBatch:
    """A batch as a reader returns it for a small file: `good` records, `quarantined` rejected."""
    raw = raw_batch(
        [{"v": "ok"}] * good, [QuarantineEntry("in.jsonl", n + 1, n, "malformed JSON") for n in range(quarantined)]
    )
    raw.start, raw.exhausted = start or Position(), exhausted
    return raw


def test_a_file_whose_every_record_is_bad_stops_whatever_its_size():
    with pytest.raises(DataErrorRateExceeded) as info:
        prepare(whole_file_batch(quarantined=5))

    message = str(info.value)
    assert message.startswith("in.jsonl: none of its 5 record(s)") and "first at line 1: malformed JSON" in message
    assert "--max-error-rate 1" in message and info.value.exit_code == 2


@pytest.mark.parametrize(
    "raw",
    [
        whole_file_batch(quarantined=5, good=1),
        whole_file_batch(quarantined=5, exhausted=False),
        whole_file_batch(quarantined=5, start=Position(0, 900, 40)),
    ],
    ids=["one-good-record", "file-goes-on", "end-of-a-longer-file"],
)
def test_a_small_batch_that_is_not_a_whole_bad_file_goes_on(raw):
    assert prepare(raw).counters.rows_quarantined == 5


def test_max_error_rate_1_quarantines_even_a_whole_bad_file():
    assert prepare(whole_file_batch(quarantined=5), ctx=context(max_error_rate=1.0)).counters.rows_quarantined == 5


def test_a_batch_that_would_give_the_table_more_than_10000_columns_is_refused():
    known = {f"k{n}": ColumnType.INT64 for n in range(10_000 - len(META_COLUMNS) - 1)}

    assert prepare(raw_batch([{"k0": 1, "new": 2}]), known=known).new_columns == {"new": ColumnType.INT64}
    with pytest.raises(InputError, match="10,001 columns"):
        prepare(raw_batch([{"k0": 1, "new": 2, "newer": 3}]), known=known)


def source_batch(rows: list[dict], sizes: list[int], fmt: RecordFormat = RecordFormat.JSONL) -> RawBatch:
    """A batch whose records sit at offsets 0, 100, 200, ... of their source, with these sizes."""
    offsets = [100 * n for n in range(len(rows))]
    frame = pl.DataFrame(rows).with_columns(
        pl.Series("__line", range(1, len(rows) + 1), dtype=pl.Int64), pl.Series("__offset", offsets, dtype=pl.Int64)
    )
    spans = Spans(array("q", offsets), array("q", sizes)) if fmt is not RecordFormat.ROWS else Spans()
    return RawBatch(frame=frame, records_read=len(rows), format=fmt, spans=spans, end=Position(0, 1000, len(rows)))


def test_a_row_the_transform_rejects_points_back_to_its_source_bytes_not_to_the_transformed_row():
    raw = source_batch([{"v": "ok", "user": {"id": 1}}, {"v": "bad", "user": {"id": 2}}], sizes=[30, 31])

    prepared = prepare(raw, transform=lambda f: flag_bad(flatten(f, keep=INTERNAL_COLUMNS).frame))

    [entry] = prepared.quarantined
    assert (entry.line, entry.offset, entry.size, entry.record) == (2, 100, 31, None)


def test_a_rejected_parquet_row_is_kept_as_the_row_was_read():
    raw = source_batch([{"v": "ok", "user": {"id": 1}}, {"v": "bad", "user": {"id": 2}}], [0, 0], RecordFormat.ROWS)

    prepared = prepare(raw, transform=lambda f: flag_bad(flatten(f, keep=INTERNAL_COLUMNS).frame))

    [entry] = prepared.quarantined
    assert entry.format is RecordFormat.ROWS and json.loads(entry.record) == {"v": "bad", "user": {"id": 2}}
