"""HOLD₂ and the DuckDB warehouse facing bad, large and wide records, on real files and real
DuckDB: quarantine files with original bytes and side files, wide batches, rows over DuckDB's
JSON object size, runs that staged nothing, and replay inputs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bqhold.tasks.core.checkpoint import Counters, Phase
from bqhold.tasks.core.column_types import ColumnType
from bqhold.tasks.core.errors import InputError, StateError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.ledger import LedgerEntry
from bqhold.tasks.core.load_plan import LoadGroup
from bqhold.tasks.core.quarantine import entry_line
from bqhold.tasks.core.records import Position, QuarantineEntry, RecordFormat
from bqhold.tasks.core.runs import JobIdentity, RunRecord
from bqhold.tasks.core.staging import PreparedBatch
from bqhold.tasks.storage.hold_store import HoldStore
from bqhold.tasks.storage.hold_writer import _write_quarantine
from bqhold.tasks.storage.replay import hold_dir_of, prepare_replay
from bqhold.tasks.warehouses.duckdb_warehouse import DuckDbWarehouse

JOB = JobIdentity("generic", "/in/events.jsonl", "events", None, "duckdb:///tmp/w.duckdb")


def make_run(store: HoldStore, run_id: str, input_spec: str = JOB.input_spec) -> None:
    job = JobIdentity(JOB.pipeline, input_spec, JOB.table, JOB.key, JOB.warehouse)
    inputs = (InputFile(input_spec, InputFormat.JSONL, 1, 0),)
    store.create_run(RunRecord(run_id, job, inputs, "fp", Phase.STAGING, datetime.now(UTC)))


def test_a_quarantine_file_keeps_small_records_inline_and_streams_large_ones_to_side_files(tmp_path: Path):
    big = b'{"blob": "' + b"x" * (2 << 20) + b'"}'
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"ok": 1}\n{bad\r\n' + big + b"\n")
    csv_source = tmp_path / "in.csv"
    csv_source.write_bytes(b"id,v\n1,a,extra\n")
    entries = [
        QuarantineEntry(str(source), 2, 10, "malformed JSON", size=6),
        QuarantineEntry(str(source), 3, 16, "too large", size=len(big) + 1),
        QuarantineEntry(str(csv_source), 2, 5, "expected 2 fields, found 3", RecordFormat.CSV, size=10),
    ]
    path = tmp_path / "runs" / "r1" / "quarantine" / "batch-000004.jsonl"

    _write_quarantine(path, entries, "r1", 4)

    small, large, csv = (json.loads(line) for line in path.read_text().splitlines())
    assert (small["record"], small["run_id"], small["batch"]) == ("{bad", "r1", 4)
    assert large["record_file"] == "batch-000004-line-3.bin" and large["record_bytes"] == len(big)
    assert (path.parent / large["record_file"]).read_bytes() == big
    assert (csv["record"], csv["header"]) == ("1,a,extra", "id,v")
    assert sorted(p.name for p in path.parent.iterdir()) == ["batch-000004-line-3.bin", "batch-000004.jsonl"]


def ledger_entry(run_id: str, batch: int = 0) -> LedgerEntry:
    return LedgerEntry(
        run_id, batch, f"runs/{run_id}/segments/batch-{batch:06d}.jsonl", None, Counters(), Position(), True
    )


def test_a_wide_batch_fits_and_the_small_cache_cap_comes_back(tmp_path: Path):
    rows = pl.DataFrame({f"c{n}": list(range(500)) for n in range(3000)})
    with HoldStore(HoldLayout(tmp_path)) as store:
        make_run(store, "wide")
        cap = store._con.execute("SELECT current_setting('memory_limit')").fetchall()
        columns = dict.fromkeys(rows.columns, ColumnType.INT64)
        store.commit_batch("wide", "", ledger_entry("wide"), PreparedBatch(rows, None, None, [], columns, Counters()))

        assert len(store.staged_schema("wide")) == 3000
        assert store._con.execute("SELECT current_setting('memory_limit')").fetchall() == cap


def test_the_duckdb_warehouse_loads_a_row_over_its_default_json_object_size(tmp_path: Path):
    blob = "z" * (40 * 2**20)
    segment = tmp_path / "batch-000000.jsonl"
    segment.write_text(json.dumps({"_run_id": "r1", "_batch": 0, "n": 1, "blob": blob}) + "\n")
    schema = {
        "_run_id": ColumnType.STRING,
        "_batch": ColumnType.INT64,
        "n": ColumnType.INT64,
        "blob": ColumnType.STRING,
    }
    warehouse = DuckDbWarehouse(tmp_path / "w.duckdb")
    try:
        loaded = warehouse.load("big", schema, LoadGroup("r1", "r1-b0", (0,), (segment.name,), 1, "h0"), [segment])
        assert loaded == 1 and warehouse.fingerprints("big", "r1")[0].rows == 1
    finally:
        warehouse.close()


def test_a_run_that_staged_nothing_is_forgotten_with_its_files_and_one_that_did_is_kept(tmp_path: Path):
    layout = HoldLayout(tmp_path)
    with HoldStore(layout) as store:
        make_run(store, "empty")
        make_run(store, "staged")
        layout.checkpoint("empty").parent.mkdir(parents=True)
        layout.checkpoint("empty").write_text("{}")
        store.commit_batch(
            "events", "", ledger_entry("staged"), PreparedBatch(pl.DataFrame(), None, None, [], {}, Counters())
        )

        store.forget_run("empty")
        with pytest.raises(StateError, match="staged batches"):
            store.forget_run("staged")

        assert [run.run_id for run in store.runs()] == ["staged"]
    assert not layout.run_dir("empty").exists()


def quarantine_file(layout: HoldLayout, run_id: str, *records: bytes) -> Path:
    path = layout.quarantine(run_id, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    entry = QuarantineEntry("/in/events.jsonl", 1, 0, "malformed JSON")
    path.write_text("".join(entry_line(entry, run_id, 0, record) + "\n" for record in records))
    return path


def test_a_replay_input_is_written_once_and_a_changed_replayed_file_is_refused(tmp_path: Path):
    layout = HoldLayout(tmp_path / "hold")
    with HoldStore(layout) as store:
        make_run(store, "r1")
    path = quarantine_file(layout, "r1", b'{"n": 1}', b'{"n": 2}')
    assert hold_dir_of(path) == layout.root

    first = prepare_replay(path, layout.root)
    written = first.input.stat().st_mtime_ns
    again = prepare_replay(path, layout.root)

    assert first.run.run_id == "r1" and first.run.job == JOB
    assert first.input.read_bytes() == b'{"n": 1}\n{"n": 2}\n'
    assert again.input == first.input and again.input.stat().st_mtime_ns == written, "unchanged: not rewritten"

    with HoldStore(layout) as store:
        make_run(store, "replay-1", input_spec=str(first.input))
    quarantine_file(layout, "r1", b'{"n": 1}', b'{"n": 2}', b'{"n": 3}')
    with pytest.raises(InputError, match="replayed before .*replay-1"):
        prepare_replay(path, layout.root)


def test_a_replay_needs_the_hold_dir_of_its_run(tmp_path: Path):
    elsewhere = HoldLayout(tmp_path / "other")
    with HoldStore(elsewhere):
        pass
    copy = quarantine_file(HoldLayout(tmp_path / "copy"), "r1", b"{}")

    with pytest.raises(InputError, match="holds no HOLD₂"):
        prepare_replay(copy, tmp_path / "nowhere")
    with pytest.raises(InputError, match="run r1 is not in HOLD₂"):
        prepare_replay(copy, elsewhere.root)
