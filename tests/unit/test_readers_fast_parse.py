"""The guarded fast parse returns what the exact parse returns, batch by batch, or leaves the batch to it.

Each case reads one file batch after batch twice: exactly, and with the fast parse allowed (the
schema learnt from the batch before, as a run keeps it). The frames (columns, order, dtypes,
values, positions), quarantine entries, spans and ends must be equal; which batches went fast
is what the case then asserts.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from bqhold.tasks.core.column_types import Schema
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.readers.fast_json import next_learnt
from bqhold.tasks.core.records import EXACT_PARSE, ParseChoice, Position, RawBatch
from bqhold.tasks.core.schema import column_type, read_as_text

MAX_RECORD_BYTES = 64 * 1024 * 1024


def read_through(path: Path, fast: bool, batch_size: int, text: frozenset[str] = frozenset()) -> list[RawBatch]:
    """Every batch of `path`, each read as a run reads it (columns staged as text so far read as text)."""
    item = InputFile(str(path), InputFormat.JSONL, path.stat().st_size, 0)
    position, learnt, known, batches = Position(), None, Schema(), []
    while True:
        parse = ParseChoice(True, learnt) if fast else EXACT_PARSE
        raw = read_batch(item, position, batch_size, MAX_RECORD_BYTES, read_as_text(known, text), parse)
        learnt = next_learnt(learnt, raw.schema)
        known |= {name: column_type(t) for name, t in raw.frame.schema.items() if column_type(t) and name not in known}
        batches.append(raw)
        if raw.exhausted:
            return batches
        position = raw.end


def fast_batches(path: Path, batch_size: int, text: frozenset[str] = frozenset()) -> list[bool]:
    """Which batches the fast parse took, after checking that they equal the exact parse's."""
    exact, fast = read_through(path, False, batch_size, text), read_through(path, True, batch_size, text)
    assert len(exact) == len(fast)
    for one, other in zip(exact, fast, strict=True):
        assert_frame_equal(one.frame, other.frame, check_exact=True)
        assert (one.quarantined, one.start, one.end, one.records_read) == (
            other.quarantined,
            other.start,
            other.end,
            other.records_read,
        )
        assert (one.bytes_read, one.exhausted, one.schema) == (other.bytes_read, other.exhausted, other.schema)
        assert (one.spans.offsets, one.spans.sizes) == (other.spans.offsets, other.spans.sizes)
    return [batch.fast for batch in fast]


def write(tmp_path: Path, lines: list[bytes]) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    return path


def records(count: int, **changes: object) -> list[bytes]:
    rows = (
        {"id": n, "name": f"n{n}", "score": n + 0.5, "ok": n % 2 == 0, "tags": ["a"], "u": {"x": n}}
        for n in range(count)
    )
    return [json.dumps(row | changes).encode() for row in rows]


def test_clean_batches_after_the_first_are_parsed_fast(tmp_path: Path) -> None:
    assert fast_batches(write(tmp_path, records(40)), 10) == [False, True, True, True]


def test_the_fast_parse_is_off_unless_asked(tmp_path: Path) -> None:
    assert not any(batch.fast for batch in read_through(write(tmp_path, records(40)), False, 10))


BAD_LINES = {
    "invalid UTF-8": b'{"id": 1, "name": "\xff\xfe"}',
    "a null line": b"null",
    "two objects on one line": b'{"id": 1}{"id": 2}',
    "NaN": b'{"id": 1, "score": NaN}',
    "Infinity": b'{"id": 1, "score": -Infinity}',
    "a blank line": b"",
    "a number in a string field": b'{"id": 1, "name": 5}',
    "a bool in an int field": b'{"id": true}',
    "a fraction in an int field": b'{"id": 1.5}',
    "an object in a string field": b'{"id": 1, "name": {"a": 1}}',
    "a duplicate key": b'{"id": 1, "id": 2}',
    "a lone surrogate": b'{"id": 1, "name": "\\ud800"}',
    "malformed JSON": b'{"id": 1,',
    "deep nesting": b'{"id": 1, "d": ' + b"[" * 40 + b"]" * 40 + b"}",
    "an array line": b"[1, 2]",
}


# Literals pyarrow reads as floats where the learnt schema has one, in a record otherwise like the others.
NOT_JSON_FLOATS = {
    "NaN": ('"score": 15.5', '"score": NaN'),
    "Inf": ('"score": 15.5', '"score": Inf'),
    "-Infinity": ('"score": 15.5', '"score": -Infinity'),
    "a number beyond a float": ('"score": 15.5', '"score": 1e400'),
    "NaN in a list": ('"xs": [1.5, 2.5]', '"xs": [1.5, NaN]'),
}


@pytest.mark.parametrize("change", NOT_JSON_FLOATS.values(), ids=NOT_JSON_FLOATS.keys())
def test_a_float_literal_json_has_not_sends_the_batch_exact(tmp_path: Path, change: tuple[str, str]) -> None:
    lines = records(40, xs=[1.5, 2.5])
    lines[15] = lines[15].replace(change[0].encode(), change[1].encode())
    assert change[1].encode() in lines[15]
    assert fast_batches(write(tmp_path, lines), 10)[1] is False


@pytest.mark.parametrize("line", BAD_LINES.values(), ids=BAD_LINES.keys())
def test_a_batch_with_a_line_the_guards_doubt_is_parsed_exactly(tmp_path: Path, line: bytes) -> None:
    lines = records(40)
    lines[15] = line

    # Then the fast parse is back (the batch right after too, unless the odd line changed the
    # field's type: a fraction among integers makes floats, and the next batch's integers do not).
    fast = fast_batches(write(tmp_path, lines), 10)
    assert (fast[1], fast[-1]) == (False, True)


def test_a_new_field_goes_exact_once_then_joins_the_schema(tmp_path: Path) -> None:
    lines = records(15) + records(25, extra="late")

    assert fast_batches(write(tmp_path, lines), 10) == [False, False, True, True]


def test_a_retyped_field_goes_exact_once_then_its_new_type_is_learnt(tmp_path: Path) -> None:
    lines = records(10) + records(30, id="now text")

    assert fast_batches(write(tmp_path, lines), 10) == [False, False, True, True]


@pytest.mark.parametrize(
    "changes",
    [
        {"u": None},  # a struct null in every record: the exact parse infers null
        {"tags": []},  # lists all empty: it infers a list of nulls
        {"tags": [None, None]},  # lists of nulls
        {"score": 2},  # a float field written as integers: it infers integers
        {"name": None},  # a field all null
    ],
    ids=["null struct", "empty lists", "lists of nulls", "integers in a float field", "null field"],
)
def test_a_batch_the_exact_parse_would_type_otherwise_goes_exact(tmp_path: Path, changes: dict) -> None:
    lines = records(10) + records(10, **changes) + records(10)

    assert fast_batches(write(tmp_path, lines), 10)[1] is False


def test_whole_numbers_written_as_floats_stay_fast(tmp_path: Path) -> None:
    lines = records(10) + records(20, score=2.0)

    assert fast_batches(write(tmp_path, lines), 10) == [False, True, True]


def test_a_batch_whose_first_record_orders_its_keys_otherwise_or_lacks_one_goes_exact(tmp_path: Path) -> None:
    lines = records(30)
    lines[10] = json.dumps(dict(reversed(json.loads(lines[10]).items()))).encode()
    lines[20] = json.dumps({key: value for key, value in json.loads(lines[20]).items() if key != "ok"}).encode()

    assert fast_batches(write(tmp_path, lines), 10) == [False, False, False]


def test_a_field_read_as_text_is_parsed_exactly_when_it_holds_other_kinds(tmp_path: Path) -> None:
    lines = records(10) + records(10, name=7) + records(10)

    assert fast_batches(write(tmp_path, lines), 10, text=frozenset({"name"})) == [False, False, True]


def test_a_20_mb_string_is_parsed_fast_or_exactly_alike(tmp_path: Path) -> None:
    lines = records(30)
    lines[25] = json.dumps({**json.loads(lines[25]), "name": "x" * (20 * 1024 * 1024)}).encode()

    assert fast_batches(write(tmp_path, lines), 10) == [False, True, True]


def random_value(rng: random.Random, depth: int = 0) -> object:
    kind = rng.random()
    if kind < 0.1:
        return None
    if kind < 0.3:
        return rng.randint(-5, 10 ** rng.randint(0, 18))
    if kind < 0.45:
        return rng.choice([rng.random() * 100, 2.0, 1e20, -0.0, 2.5e-300, 0.1 + 0.2])
    if kind < 0.6:
        return rng.choice(["x", "héllo", "", "2024-01-01T00:00:00", 'a"b', "é😀", "12"])
    if kind < 0.7:
        return rng.random() < 0.5
    if kind < 0.85 and depth < 3:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 3:
        return {f"k{i}": random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}
    return 1


def random_lines(rng: random.Random) -> list[bytes]:
    """Records that mostly keep one shape, with now and then another kind, a late field or a bad line."""
    shape = {f"f{i}": random_value(rng) for i in range(rng.randint(1, 6))}
    lines = []
    for _ in range(rng.randint(1, 120)):
        record = {name: value if rng.random() > 0.2 else random_value(rng) for name, value in shape.items()}
        if rng.random() < 0.02:
            record["late"] = random_value(rng)
        line = json.dumps(record, ensure_ascii=rng.random() < 0.5).encode()
        lines.append(rng.choice([line] * 60 + list(BAD_LINES.values())))
    return lines


@pytest.mark.parametrize("seed", range(40))
def test_random_records_parse_alike(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    fast_batches(write(tmp_path, random_lines(rng)), rng.choice([3, 7, 20]), frozenset(rng.sample(["f0", "f1"], 1)))


def test_the_run_keeps_the_order_it_learnt_when_a_batch_only_reorders_the_fields() -> None:
    learnt = pl.Schema({"a": pl.Int64, "s": pl.Struct({"x": pl.String, "y": pl.Float64})})
    shuffled = pl.Schema({"s": pl.Struct({"y": pl.Float64, "x": pl.String}), "a": pl.Int64})
    retyped = pl.Schema({"s": pl.Struct({"y": pl.Float64, "x": pl.String}), "a": pl.String})

    assert next_learnt(learnt, shuffled) is learnt
    assert next_learnt(learnt, retyped) is retyped
    assert next_learnt(None, shuffled) is shuffled
