"""HOLD₁ in Cloud Storage (tasks/warehouses/gcs_source.py) through a network that fails: the real
flow, the real client, the emulator behind a proxy that faults 30% of requests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.events import write as write_events
from bqhold.flows.generic import generic_flow
from bqhold.tasks.warehouses import gcs_source
from bqhold.tasks.warehouses.gcs_source import _pattern
from tests.conftest import expected_records, warehouse_counts
from tests.faultproxy import ALL_KINDS, FaultProxy


@pytest.mark.parametrize(
    ("glob", "name", "matches"),
    [
        ("exports/*.jsonl", "exports/a.jsonl", True),
        ("exports/*.jsonl", "exports/day/a.jsonl", False),
        ("exports/**.jsonl", "exports/day/a.jsonl", True),
        ("exports/part-0?.csv", "exports/part-07.csv", True),
        ("exports/part-[!0]*.csv", "exports/part-07.csv", False),
        ("exports/a+b.jsonl", "exports/a+b.jsonl", True),
    ],
)
def test_a_pattern_matches_object_names_as_a_shell_glob_matches_paths(glob, name, matches):
    assert bool(_pattern(glob).fullmatch(name)) is matches


@pytest.fixture
def proxied(gcs_emulator, gcs_bucket, monkeypatch: pytest.MonkeyPatch) -> Iterator[FaultProxy]:
    with FaultProxy(gcs_emulator.endpoint, delay_s=2.5, seed=5) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        yield proxy


def test_thirty_percent_of_storage_requests_faulted_every_record_once(
    prefect_api, proxied: FaultProxy, gcs_bucket, tmp_path: Path, retry_timing, monkeypatch
) -> None:
    monkeypatch.setattr(gcs_source, "CHUNK_BYTES", 64 * 1024)  # many ranged reads per object, to fault
    events = write_events(tmp_path / "events.jsonl", rows=20_000, bad_lines=True)
    ids, bad = expected_records(events)
    lines = [line + b"\n" for line in events.read_bytes().split(b"\n")[:-1]]
    for index in range(4):
        part = b"".join(lines[index * 5_001 : (index + 1) * 5_001])
        gcs_bucket.blob(f"in/part-{index}.jsonl").upload_from_string(part)
    retry_timing(first_wait_s=0.01, request_timeout_s=2.0)
    proxied.configure(fault_rate=0.3, kinds=ALL_KINDS)
    summary = generic_flow(
        input=f"gs://{gcs_bucket.name}/in/*.jsonl",
        key="event_id",
        table="events",
        batch_size=2_000,
        hold_dir=str(tmp_path / "hold"),
        warehouse=f"duckdb://{tmp_path / 'warehouse.duckdb'}",
        max_retries=25,
    )
    proxied.configure(fault_rate=0)

    assert summary["status"] == "delivered" and summary["verified"] is True
    assert summary["rows_quarantined"] == bad
    assert warehouse_counts(tmp_path / "warehouse.duckdb") == (len(ids), len(ids))
    faults = sum(count for kind, count in proxied.stats.items() if kind in ALL_KINDS)
    assert faults >= 0.2 * (faults + proxied.stats["forwarded"]), proxied.stats


def test_a_folder_is_its_objects_and_a_pattern_that_matches_none_is_one_line(gcs_bucket, gcs_emulator_env, tmp_path):
    from bqhold.tasks.core.errors import InputError
    from bqhold.tasks.core.retry import RequestRetries
    from bqhold.tasks.warehouses.gcs_source import use_gcs_inputs

    for name in ("in/b.jsonl", "in/a.csv.gz", "in/sub/c.jsonl", "in/empty.jsonl"):
        gcs_bucket.blob(name).upload_from_string(b"" if "empty" in name else b'{"a": 1}\n')
    source = use_gcs_inputs(None, RequestRetries(0))

    found = source.resolve(f"gs://{gcs_bucket.name}/in/", tmp_path)

    assert [item.origin for item in found] == [
        f"gs://{gcs_bucket.name}/in/a.csv.gz",
        f"gs://{gcs_bucket.name}/in/b.jsonl",
    ]
    assert found[0].compression == "gzip" and found[1].mtime_ns == gcs_bucket.get_blob("in/b.jsonl").generation
    with pytest.raises(InputError, match=r"in/\*\.parquet: no object matches this pattern"):
        source.resolve(f"gs://{gcs_bucket.name}/in/*.parquet", tmp_path)
