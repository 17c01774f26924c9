"""`python flows/run.py report`: where a run's time and memory went, as a table and a PNG chart.

Reads HOLD₂'s `pipeline_metrics` (read-only: it works while no run holds the hold directory).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.storage.duckdb_files import connect

_STAGE_COLUMNS = ("stage", "calls", "rows", "total_s", "avg_s", "peak_rss_mb", "avg_rise_mb")


def _connect(layout: HoldLayout) -> duckdb.DuckDBPyConnection:
    if not layout.database.exists():
        raise ConfigError(f"no HOLD₂ in {layout.root}")
    in_use = "is in use by a running bqhold run; report after it ends"
    return connect(layout.database, flag="--hold-dir", named=layout.root, in_use=in_use, read_only=True)


def latest_run(con: duckdb.DuckDBPyConnection) -> str:
    """The run whose metrics are newest."""
    row = con.execute("SELECT run_id FROM pipeline_metrics ORDER BY started_at DESC LIMIT 1").fetchone()
    if row is None:
        raise ConfigError("HOLD₂ holds no metrics yet: run a job first")
    return row[0]


def stage_table(con: duckdb.DuckDBPyConnection, run_id: str) -> str:
    """The per-stage table of a run, aligned for a terminal."""
    rows = con.execute(
        f"SELECT {', '.join(_STAGE_COLUMNS)} FROM v_memory_by_stage WHERE run_id = ? ORDER BY total_s DESC", [run_id]
    ).fetchall()
    cells = [list(_STAGE_COLUMNS)] + [[f"{v:,}" if isinstance(v, int) else str(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(_STAGE_COLUMNS))]
    lines = ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in cells]
    return "\n".join([f"run {run_id}: time and memory by stage", *lines])


def memory_chart(con: duckdb.DuckDBPyConnection, run_id: str, path: Path) -> Path:
    """A PNG of peak RSS per stage and the batch size over the run."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    timeline = con.execute(
        "SELECT epoch(started_at) - min(epoch(started_at)) OVER () AS t, rss_peak_mb, batch_size, stage "
        "FROM v_memory_timeline WHERE run_id = ?",
        [run_id],
    ).fetchall()
    seconds = [row[0] for row in timeline]
    figure, memory = pyplot.subplots(figsize=(10, 4.5))
    memory.plot(seconds, [row[1] for row in timeline], color="tab:red", linewidth=1.2, label="peak RSS per stage (MB)")
    memory.set_xlabel("seconds since the first batch")
    memory.set_ylabel("RSS (MB)", color="tab:red")
    sizes = memory.twinx()
    sizes.step(
        seconds, [row[2] for row in timeline], where="post", color="tab:blue", linewidth=1.0, label="batch size (rows)"
    )
    sizes.set_ylabel("batch size (rows)", color="tab:blue")
    sizes.set_ylim(bottom=0)
    figure.suptitle(f"bqhold run {run_id}: memory and batch size")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def report(hold_dir: Path, run_id: str | None, chart: Path | None) -> str:
    """The text report of a run (default: the newest), writing the chart beside HOLD₂."""
    layout = HoldLayout(hold_dir.resolve())
    with _connect(layout) as con:
        run_id = run_id or latest_run(con)
        text = stage_table(con, run_id)
        written = memory_chart(con, run_id, chart or layout.run_dir(run_id) / "memory.png")
    return f"{text}\nchart: {written}"
