"""What staging shows while it runs (tasks/core/progress.py): rates, ETA, durations and the texts
of the progress artifact, its log line and the progress bar, from made-up checkpoints."""

from __future__ import annotations

from bqhold.tasks.core.checkpoint import Checkpoint, Counters
from bqhold.tasks.core.memory import MemoryReading
from bqhold.tasks.core.progress import (
    bar_detail,
    duration_text,
    eta_s,
    progress_markdown,
    rate,
    rate_text,
    staging_view,
    window_line,
)
from bqhold.tasks.core.records import Position

MB = 2**20
MEMORY = MemoryReading(312 * MB, 4096 * MB, "cgroup v2")


def checkpoint(batch: int, rows_read: int, done: bool = False, **counts: int) -> Checkpoint:
    counters = Counters(rows_read=rows_read, rows_written=counts.get("written", rows_read), **counts.get("more", {}))
    return Checkpoint("generic-1", "fp", batch, Position(0, rows_read * 100), counters, 50_000, input_done=done)


def view(batch: int, rows_read: int, percent: float, elapsed_s: float, since=None, since_percent=0.0, **kw):
    cp = checkpoint(batch, rows_read, **kw)
    return staging_view(cp, percent, since or checkpoint(0, 0), since_percent, elapsed_s, MEMORY, 0.8, 0.9)


def test_rate_and_eta_follow_this_sessions_pace():
    assert rate(1000, 4.0) == 250 and rate(10, 0) is None
    assert eta_s(20.0, 60.0, 10.0) == 10.0  # 40 points in 10 s: 40 more take 10 s
    assert eta_s(50.0, 50.0, 10.0) is None  # nothing moved: no pace
    assert eta_s(0.0, 100.0, 5.0) == 0.0


def test_durations_and_rates_read_like_a_person_writes_them():
    assert [duration_text(s) for s in (0.42, 42.4, 185, 7500)] == ["0.4 s", "42 s", "3 min 05 s", "2 h 05 min"]
    assert duration_text(None) == "not known yet"
    assert rate_text(45_678.4) == "45,678 rows/s" and rate_text(12.25) == "12.2 rows/s"


def test_a_resumed_session_counts_only_what_it_read_itself():
    resumed_at = checkpoint(10, 500_000)
    shown = view(30, 1_500_000, 75.0, 20.0, since=resumed_at, since_percent=25.0)
    assert shown.rows_per_s == 50_000  # 1M rows in 20 s, not 1.5M
    assert shown.eta_s == 10.0  # 50 points in 20 s: 25 more take 10 s


def test_the_progress_description_labels_each_fact_with_its_unit():
    shown = view(25, 1_250_000, 50.0, 27.0, more={"rows_quarantined": 12, "duplicates_skipped": 8})
    text = progress_markdown(shown)
    assert "**Rows staged:** 1,250,000 (1,250,000 read, 20 quarantined or duplicates)" in text
    assert "**Rate:** 46,296 rows/s" in text
    assert "**ETA:** 27 s" in text and "**Elapsed:** 27 s" in text
    assert "**Batch size:** 50,000 rows (next batch: 25)" in text
    memory = "312 MB of 4,096 MB (8%) · limit: the container's (cgroup v2) · warning at 80%, critical at 90%"
    assert f"**Memory:** {memory}" in text


def test_a_finished_staging_says_done_and_a_first_view_says_what_it_does_not_know():
    assert "**ETA:** done" in progress_markdown(view(40, 2_000_000, 99.0, 40.0, done=True))
    first = staging_view(checkpoint(0, 0), 0.0, checkpoint(0, 0), 0.0, 0.0, None, 0.8, 0.9)
    text = progress_markdown(first)
    assert "**Rate:** not known yet" in text and "**Memory:** not known yet" in text


def test_the_log_line_counts_the_batches_since_the_last_one():
    before, after = view(12, 600_000, 30.0, 10.0), view(20, 1_000_000, 50.0, 20.0)
    assert window_line(before, after) == (
        "staged batches 12-19: 400,000 rows in 10.0 s (40,000 rows/s); 1,000,000 staged, 50.0% of the input read, "
        "ETA 20 s; batch size 50,000; memory 312 MB of 4,096 MB"
    )
    assert window_line(before, view(13, 650_000, 32.5, 25.0)).startswith("staged batch 12: 50,000 rows in 15.0 s")


def test_the_bar_shows_rate_eta_batch_and_memory():
    assert bar_detail(view(20, 1_000_000, 50.0, 20.0)) == (
        "1,000,000 rows staged · 50,000 rows/s · ETA 20 s · batch 20 (50,000 rows) · RSS 312 MB of 4,096 MB"
    )
