"""`python flows/run.py report` on a real HOLD₂ whose metrics say what the guard did: the text and
the chart name the memory limit and the guard's levels, the stages, and each batch-size change."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.metrics import StageMetric
from bqhold.tasks.storage.hold_store import HoldStore
from tests.conftest import ROOT

HALVED = "RSS 330 MB is 82% of 400 MB (explicit), above warning 80%: batch halved"


def batch(number: int, at: float, size: int, peak_mb: float, decision: str = "") -> list[StageMetric]:
    """A batch's four stages, a quarter of a second each, from `at` seconds."""
    return [
        StageMetric("r1", number, stage, 1_000_000 + at + 0.25 * i, 0.25, size, 200.0, 210.0, peak_mb, size, decision)
        for i, stage in enumerate(("read", "transform", "write", "checkpoint"))
    ]


def test_report_names_the_limit_the_stages_and_each_batch_size_change(tmp_path: Path) -> None:
    hold = tmp_path / "hold"
    metrics = [
        *batch(0, 0.0, 1000, 300.0),
        *batch(1, 1.0, 1000, 350.0),
        *batch(2, 2.0, 500, 280.0, HALVED),
        *batch(3, 3.0, 750, 290.0, "comfortable, batch grows back"),
        StageMetric("r1", None, "load", 1_000_004.0, 1.5, 3250, 220.0, 260.0, 300.0, 750, ""),
        StageMetric("r1", None, "verify", 1_000_005.5, 0.5, 3250, 230.0, 230.0, 240.0, 750, ""),
    ]
    with HoldStore(HoldLayout(hold)) as store:
        store.record_metrics(metrics)
    chart = tmp_path / "chart.png"

    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "flows" / "run.py"),
            "report",
            "--hold-dir",
            str(hold),
            "--chart",
            str(chart),
            "--memory-limit-mb",
            "400",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "run r1: time and memory by stage"
    assert (
        "memory limit 400 MB (--memory-limit-mb, as read now): warning at 80% (320 MB), critical at 90% (360 MB); "
        "peak RSS 350 MB (88%)"
    ) in lines
    assert "stages: staging 0.0-4.0 s, loading 4.0-5.5 s, verifying 5.5-6.0 s" in lines
    changes = lines[lines.index("batch size changed 2 time(s):") + 1 :][:2]
    assert changes == [f"  2.0 s: 1,000 -> 500 ({HALVED})", "  3.0 s: 500 -> 750 (comfortable, batch grows back)"]
    assert lines[-1] == f"chart: {chart}"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 20_000
