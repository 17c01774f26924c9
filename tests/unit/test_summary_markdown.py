"""The summary artifact's text (tasks/core/summary_markdown.py): sections of labelled rows with
units and separators, yes/no, and the next step for each outcome."""

from __future__ import annotations

from bqhold.tasks.core.summary import NO_RUN
from bqhold.tasks.core.summary_markdown import summary_markdown
from tests.unit.test_summary import summary


def test_a_delivered_run_reads_as_labelled_sections():
    text = summary_markdown(
        summary(rows_read=1_234_567, rows_written=1_200_000, stage_s=185.0, peak_rss_mb=1536.4, guard_shrinks=2)
    )
    assert text.startswith("## bqhold run `generic-1`: delivered and verified\n")
    for line in (
        "| read from HOLD₁ | 1,234,567 |",
        "| staged into HOLD₂ | 1,200,000 |",
        "| verified against HOLD₂'s ledger | yes |",
        "| HOLD₂ | `/hold` |",
        "| quarantine | `/hold/runs/generic-1/quarantine` |",
        "| staging (HOLD₁ → HOLD₂) | 3 min 05 s |",
        "| peak memory (RSS) | 1,536 MB |",
        "| memory guard | 2 smaller, 0 larger, 0 out-of-memory retries |",
        "| batches | 3 (last size 500 rows) |",
    ):
        assert line in text, text
    assert text.index("### Rows") < text.index("### Where") < text.index("### Time and memory") < text.index("### Next")
    assert "cleanup --run-id generic-1 --hold-dir /hold --apply" in text
    assert "None" not in text and "True" not in text and "False" not in text


def test_an_unverified_run_names_the_redeliver_command_and_a_failed_one_the_retry():
    unverified = summary_markdown(summary(status="unverified", verified=False, exit_code=3, message="NOT verified"))
    assert "loaded, NOT verified" in unverified and "Exit code 3. NOT verified" in unverified
    assert "| verified against HOLD₂'s ledger | no |" in unverified
    assert "redeliver --run-id generic-1 --hold-dir /hold" in unverified
    failed = summary_markdown(summary(run_id=NO_RUN, status="failed", exit_code=2, message="bad --batch-size"))
    assert failed.startswith("## bqhold no run was started: failed") and "retry this flow run" in failed
    resumed = summary_markdown(summary(resumed_from_batch=2, files_skipped=("a.jsonl",), agent={"calls": 1}))
    assert "this session from batch 2" in resumed and "| files skipped (delivered before, unchanged) | 1 |" in resumed
    assert "`bqhold-agent-usage` artifact" in resumed
