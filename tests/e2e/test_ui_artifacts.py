"""What a person sees of a finished run in Prefect's web UI: headless Chromium renders the run's
artifact pages from a real local `prefect server start` (UI served), and the rendered text shows
the progress artifact's rate, ETA and elapsed time, and the labelled summary.

Chromium is Debian's `chromium` package (.ci/run installs it); without it the test skips, saying so.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bench.events import write as write_events
from tests.prefect_server import ROOT, PrefectServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("chromium") is None,
        reason="chromium is not installed (apt-get install -y chromium; .ci/run installs it)",
    ),
]


class _Text(HTMLParser):
    """The text a page shows: its elements' text, without styles and scripts."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._hidden += tag in ("style", "script")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("style", "script")

    def handle_data(self, data: str) -> None:
        if not self._hidden and data.strip():
            self.parts.append(data.strip())


def rendered_text(url: str, profile: Path, screenshot: Path) -> str:
    """The text of `url` once headless Chromium has rendered it (and loaded its data), one piece a line."""
    done = subprocess.run(
        [
            "chromium",
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=5000",  # else the page is dumped before the UI has fetched the artifact
            "--window-size=1400,1400",
            f"--screenshot={screenshot}",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    page = _Text()
    page.feed(done.stdout)
    return "\n".join(page.parts)


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory) -> Iterator[PrefectServer]:
    with PrefectServer(tmp_path_factory.mktemp("prefect-ui"), ui=True) as server:
        yield server


def test_the_artifact_pages_show_rate_eta_and_a_labelled_summary(ui_server: PrefectServer, tmp_path: Path) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=2000, duplicate_rate=0)
    command = [sys.executable, str(ROOT / "flows" / "run.py"), "--input", str(data), "--key", "event_id"]
    command += ["--batch-size", "500", "--hold-dir", str(tmp_path / "hold"), "--no-progress"]
    command += ["--warehouse", f"duckdb://{tmp_path / 'warehouse.duckdb'}"]
    done = subprocess.run(command, env=ui_server.env(), capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    (run,) = ui_server.post("/flow_runs/filter", {"limit": 10})  # the server's only run
    cards = {artifact["key"]: artifact for artifact in ui_server.artifacts(run["id"]) if artifact.get("key")}

    def page(key: str) -> str:
        url = f"{ui_server.url}/v2/artifacts/artifact/{cards[key]['id']}"
        return rendered_text(url, tmp_path / f"chromium-{key}", tmp_path / f"{key}.png")

    progress = page("bqhold-progress")
    assert "Progress: 100%" in progress, progress
    for shown in ("Rows staged:", "2,000 (2,000 read", "Rate:", "rows/s", "ETA:", "done", "Elapsed:", "Memory:"):
        assert shown in progress, progress

    summary = page("bqhold-summary")
    for label, value in (
        ("read from HOLD₁", "2,000"),
        ("staged into HOLD₂", "2,000"),
        ("in the warehouse for this run", "2,000"),
        ("verified against HOLD₂'s ledger", "yes"),
        ("batches", "4 (last size 500 rows)"),
    ):
        assert f"{label}\n{value}" in summary, summary
    for heading in ("Rows", "Where", "Time and memory", "Next"):
        assert f"\n{heading}\n" in summary, summary
