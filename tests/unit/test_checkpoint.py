"""Checkpoints: round trip, under 1 KB at any size, damage detected, written atomically."""

from __future__ import annotations

import json

import pytest

from bqhold.tasks.core.checkpoint import (
    Checkpoint,
    Counters,
    Phase,
    decode,
    encode,
    load,
    progress_percent,
    save,
)
from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.records import Position

NEAR_MAX = 10**15 - 1


def sample(**changes) -> Checkpoint:
    base = dict(
        run_id="generic-20260101T000000Z-ab12",
        fingerprint="0123456789abcdef01234567",
        next_batch=7,
        position=Position(1, 123_456, 789),
        counters=Counters(100, 90, 6, 4),
        batch_size=50_000,
        phase=Phase.STAGING,
        input_done=False,
    )
    return Checkpoint(**(base | changes))


def huge() -> Checkpoint:
    return sample(
        run_id="r" * 100,
        next_batch=NEAR_MAX,
        position=Position(NEAR_MAX, NEAR_MAX, NEAR_MAX),
        counters=Counters(NEAR_MAX, NEAR_MAX, NEAR_MAX, NEAR_MAX),
        batch_size=NEAR_MAX,
        phase=Phase.UNVERIFIED,
        input_done=True,
    )


@pytest.mark.parametrize("phase", list(Phase))
def test_round_trip_through_bytes(phase):
    checkpoint = sample(phase=phase, input_done=True)

    assert decode(encode(checkpoint)) == checkpoint


def test_round_trip_through_a_file(tmp_path):
    path = tmp_path / "run" / "checkpoint.json"

    size = save(path, sample())

    assert load(path) == sample()
    assert size == path.stat().st_size


def test_load_of_a_missing_checkpoint_is_none(tmp_path):
    assert load(tmp_path / "checkpoint.json") is None


def test_encoded_size_stays_under_1_kib_with_huge_values():
    data = encode(huge())

    assert len(data) < 1024
    assert decode(data) == huge()


def test_checkpoint_is_readable_json_without_data():
    body = json.loads(encode(sample()))

    assert body["run_id"] == "generic-20260101T000000Z-ab12"
    assert body["position"] == {"file_index": 1, "offset": 123_456, "line": 789, "crc": 0}


def test_checkpoint_that_would_exceed_1_kib_is_refused():
    with pytest.raises(StateError, match="limit 1024"):
        encode(sample(fingerprint="f" * 2000))


def test_advanced_adds_one_batch_and_its_counters():
    after = sample().advanced(Position(1, 200_000, 900), Counters(10, 8, 1, 1), input_done=True, batch_size=25_000)

    assert after.next_batch == 8
    assert after.position == Position(1, 200_000, 900)
    assert after.counters == Counters(110, 98, 7, 5)
    assert after.input_done and after.batch_size == 25_000
    assert after.run_id == sample().run_id


def damaged_variants() -> dict[str, bytes]:
    good = encode(sample())
    body = json.loads(good)
    variants = {
        "empty": b"",
        "truncated": good[: len(good) // 2],
        "not json": b"\x00\xff garbage",
        "json list": b"[]",
        "json null": b"null",
        "missing field": json.dumps({k: v for k, v in body.items() if k != "counters"}).encode(),
        "unknown phase": good.replace(b'"staging"', b'"paused"'),
        "bad counter": json.dumps(body | {"counters": {"rows_read": "many"}}).encode(),
        "unknown position key": json.dumps(body | {"position": body["position"] | {"extra": 1}}).encode(),
    }
    return variants


@pytest.mark.parametrize("data", damaged_variants().values(), ids=damaged_variants().keys())
def test_damaged_data_raises_state_error(data):
    with pytest.raises(StateError, match="damaged"):
        decode(data)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_other_version_raises_state_error(version):
    body = json.loads(encode(sample())) | {"v": version}

    with pytest.raises(StateError, match="damaged"):
        decode(json.dumps(body).encode())


def test_missing_version_raises_state_error():
    body = json.loads(encode(sample()))
    del body["v"]

    with pytest.raises(StateError):
        decode(json.dumps(body).encode())


def test_damaged_file_error_names_the_file(tmp_path):
    path = tmp_path / "checkpoint.json"
    path.write_bytes(b"{broken")

    with pytest.raises(StateError, match="checkpoint.json"):
        load(path)


def test_save_replaces_the_file_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "checkpoint.json"
    save(path, sample())

    save(path, sample(next_batch=8))

    assert load(path).next_batch == 8
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_failed_save_keeps_the_previous_checkpoint(tmp_path):
    path = tmp_path / "checkpoint.json"
    save(path, sample())

    with pytest.raises(StateError):
        save(path, sample(fingerprint="f" * 2000))

    assert load(path) == sample()
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.json"]


def test_progress_counts_bytes_of_text_inputs_and_whole_parquet_files():
    inputs = (
        InputFile("/d/a.jsonl", InputFormat.JSONL, 600, 1),
        InputFile("/d/b.parquet", InputFormat.PARQUET, 300, 1),
        InputFile("/d/c.csv", InputFormat.CSV, 100, 1),
    )

    assert progress_percent(sample(position=Position(0, 150, 9)), inputs) == 15.0
    assert progress_percent(sample(position=Position(1, 40, 40)), inputs) == 60.0, "a Parquet row is no byte"
    assert progress_percent(sample(position=Position(2, 50, 2)), inputs) == 95.0
    assert progress_percent(sample(position=Position(2, 999, 9)), inputs) == 100.0
    assert progress_percent(sample(input_done=True), inputs) == 100.0
