"""Run summary: the JSON keys scripts rely on, saved atomically, and a readable text block."""

from __future__ import annotations

import json
from pathlib import Path

from bqhold.tasks.core.options import DEFAULT_HOLD_DIR
from bqhold.tasks.core.summary import RunSummary, redeliver_command
from tests.conftest import SUMMARY_KEYS


def summary(**changes) -> RunSummary:
    base = dict(
        run_id="generic-1",
        status="delivered",
        pipeline="generic",
        table="events",
        warehouse="duckdb://w.duckdb",
        rows_read=1200,
        rows_written=1100,
        rows_quarantined=50,
        duplicates_skipped=50,
        rows_loaded=1100,
        verified=True,
        batches=3,
        final_batch_size=500,
        resumed_from_batch=None,
        peak_rss_mb=123.4,
        duration_s=2.5,
        hold_dir="/hold",
        quarantine_dir="/hold/runs/generic-1/quarantine",
        message="",
    )
    return RunSummary(**(base | changes))


def test_saved_summary_has_every_documented_key(tmp_path):
    path = tmp_path / "summary.json"

    summary().save(path)

    body = json.loads(path.read_text())
    assert body.keys() >= SUMMARY_KEYS
    assert body["rows_read"] == 1200 and body["verified"] is True and body["exit_code"] == 0
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]


def test_render_shows_counts_and_where_hold2_is():
    text = summary().render()

    assert "run generic-1: delivered" in text
    assert "1,200" in text and "verified: yes" in text
    assert "HOLD₂ kept at /hold" in text
    assert "see /hold/runs/generic-1/quarantine" in text


def test_render_marks_unverified_and_resumed_runs():
    text = summary(verified=False, resumed_from_batch=2, message="re-run to resume").render()

    assert "verified: NO" in text
    assert "resumed from batch 2" in text
    assert text.endswith("re-run to resume")


def test_render_points_at_quarantine_only_when_rows_were_quarantined():
    assert "see " not in summary(rows_quarantined=0).render()


def test_the_redeliver_command_names_the_hold_dir_unless_it_is_the_default():
    assert redeliver_command("nightly-1", Path(DEFAULT_HOLD_DIR)) == "python flows/run.py redeliver --run-id nightly-1"
    assert (
        redeliver_command("nightly-1", Path("/data/hold"))
        == "python flows/run.py redeliver --run-id nightly-1 --hold-dir /data/hold"
    )
