"""`python flows/run.py report`: where a run's time and memory went, as a table and a PNG chart.

Reads HOLD₂'s `pipeline_metrics` (read-only: it works while no run holds the hold directory).
The chart draws the peak RSS of every stage against the memory limit and the guard's warning and
critical levels, the run's stages (staging, loading, verifying) as bands, and the batch size with
each change marked; the text names the same limit, stages and changes. HOLD₂ does not keep the
limit a run had: it is the one the guard reads here now (`--memory-limit-mb`, else the
container's or the machine's), so give the run's own flags for a run made elsewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from bqhold.tasks.core.errors import ConfigError
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.memory import critical_share, read_memory
from bqhold.tasks.core.options import declared
from bqhold.tasks.core.progress import LIMIT_SOURCES
from bqhold.tasks.storage.duckdb_files import connect

_STAGE_COLUMNS = ("stage", "calls", "rows", "total_s", "avg_s", "peak_rss_mb", "avg_rise_mb")
# What a stage of the metrics belongs to: a batch's stages are staging, then the load and the verify.
_PHASE_OF = {"load": "loading", "verify": "verifying"}
_PHASE_COLOURS = {"staging": "tab:green", "loading": "tab:orange", "verifying": "tab:purple"}


@dataclass(frozen=True)
class MemoryLimits:
    """The limit the memory guard reads, and its warning and critical levels, in MB."""

    limit_mb: float
    source: str
    warn: float
    critical: float

    @property
    def warn_mb(self) -> float:
        return self.limit_mb * self.warn

    @property
    def critical_mb(self) -> float:
        return self.limit_mb * self.critical

    def describe(self) -> str:
        """`memory limit 4,096 MB (--memory-limit-mb): warning at 80% (3,277 MB), critical at 90% (3,686 MB)`."""
        return (
            f"memory limit {self.limit_mb:,.0f} MB ({LIMIT_SOURCES.get(self.source, self.source)}, as read now): "
            f"warning at {self.warn:.0%} ({self.warn_mb:,.0f} MB), critical at {self.critical:.0%} "
            f"({self.critical_mb:,.0f} MB)"
        )


def memory_limits(memory_limit_mb: int | None = None, memory_threshold: float | None = None) -> MemoryLimits:
    """The guard's limit and levels for these flags (unset: the options' defaults), read here now."""
    threshold = memory_threshold if memory_threshold is not None else declared("memory_threshold").default
    reading = read_memory(memory_limit_mb)
    return MemoryLimits(reading.limit_bytes / 2**20, reading.limit_source, threshold / 100, critical_share(threshold))


@dataclass(frozen=True)
class Point:
    """One stage of the run's metrics, seconds after its first."""

    t: float
    duration_s: float
    stage: str
    batch: int | None
    rss_peak_mb: float
    batch_size: int
    decision: str


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


def timeline(con: duckdb.DuckDBPyConnection, run_id: str) -> list[Point]:
    """The run's stages in the order they started."""
    rows = con.execute(
        "SELECT epoch(started_at) - min(epoch(started_at)) OVER (), duration_s, stage, batch, rss_peak_mb, "
        "batch_size, coalesce(decision, '') FROM v_memory_timeline WHERE run_id = ? ORDER BY started_at",
        [run_id],
    ).fetchall()
    return [Point(*row) for row in rows]


def phases(points: list[Point]) -> list[tuple[str, float, float]]:
    """(phase, start, end) in seconds: staging (the batches' stages), loading, verifying."""
    spans: dict[str, tuple[float, float]] = {}
    for point in points:
        phase = _PHASE_OF.get(point.stage, "staging")
        start, end = spans.get(phase, (point.t, point.t))
        spans[phase] = (min(start, point.t), max(end, point.t + point.duration_s))
    return sorted(((phase, *span) for phase, span in spans.items()), key=lambda item: item[1])


def size_changes(points: list[Point]) -> list[tuple[float, int, int, str]]:
    """(seconds, size before, size after, the guard's reason) for each batch whose size differs from the one before."""
    changes, before = [], None
    for point in points:
        if point.batch is None:
            continue
        if before is not None and point.batch_size != before:
            changes.append((point.t, before, point.batch_size, point.decision))
        before = point.batch_size
    return changes


def describe(points: list[Point], limits: MemoryLimits) -> str:
    """The chart's facts as text: peak against the limit, the stages, the batch size's changes."""
    peak = max((point.rss_peak_mb for point in points), default=0.0)
    lines = [f"{limits.describe()}; peak RSS {peak:,.0f} MB ({peak / limits.limit_mb:.0%})"]
    lines.append("stages: " + ", ".join(f"{name} {start:.1f}-{end:.1f} s" for name, start, end in phases(points)))
    changes = size_changes(points)
    sizes = [point.batch_size for point in points if point.batch is not None]
    if not changes:
        lines.append(f"batch size: {sizes[0]:,} throughout" if sizes else "batch size: no batch staged")
    else:
        lines.append(f"batch size changed {len(changes)} time(s):")
        lines += [
            f"  {t:.1f} s: {old:,} -> {new:,}" + (f" ({reason})" if reason else "") for t, old, new, reason in changes
        ]
    return "\n".join(lines)


def memory_chart(points: list[Point], run_id: str, path: Path, limits: MemoryLimits) -> Path:
    """A PNG of peak RSS per stage against the limit and the guard's levels, the stages as bands,
    and the batch size over the run with each change marked."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    seconds = [point.t for point in points]
    peak = max((point.rss_peak_mb for point in points), default=0.0)
    figure, memory = pyplot.subplots(figsize=(11, 5))
    for name, start, end in phases(points):
        memory.axvspan(start, max(end, start + 0.01), color=_PHASE_COLOURS[name], alpha=0.08, label=name)
    memory.plot(seconds, [p.rss_peak_mb for p in points], color="tab:red", linewidth=1.2, label="peak RSS per stage")
    levels = (
        ("memory limit", limits.limit_mb, "-"),
        ("critical", limits.critical_mb, "--"),
        ("warning", limits.warn_mb, ":"),
    )
    # A limit far above the run's memory would flatten its curve: then the levels are named, not drawn.
    drawn = limits.critical_mb <= 4 * max(peak, 1.0)
    for name, level, style in levels:
        label = f"{name} {level:,.0f} MB" + ("" if drawn else " (off the chart)")
        if drawn:
            memory.axhline(level, color="black", linestyle=style, linewidth=0.9, label=label)
        else:
            memory.plot([], [], color="black", linestyle=style, linewidth=0.9, label=label)
    memory.set_ylim(0, (limits.limit_mb if drawn else peak) * 1.08 or 1)
    memory.set_xlabel("seconds since the first batch")
    memory.set_ylabel("RSS (MB)", color="tab:red")
    sizes = memory.twinx()
    staged = [p for p in points if p.batch is not None]
    sizes.step([p.t for p in staged], [p.batch_size for p in staged], where="post", color="tab:blue", linewidth=1.0)
    for t, _, new, _ in size_changes(points):
        sizes.plot(t, new, marker="v", color="tab:blue", markersize=6)
        sizes.annotate(f"{new:,}", (t, new), textcoords="offset points", xytext=(3, 4), fontsize=7, color="tab:blue")
    sizes.set_ylabel("batch size (rows; ▼ a change by the memory guard)", color="tab:blue")
    sizes.set_ylim(bottom=0, top=max((p.batch_size for p in staged), default=1) * 1.15)
    memory.legend(loc="upper left", fontsize=7, framealpha=0.8)
    source = LIMIT_SOURCES.get(limits.source, limits.source)
    figure.suptitle(f"bqhold run {run_id}: memory against the limit ({source}), stages, batch size")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    pyplot.close(figure)
    return path


def report(hold_dir: Path, run_id: str | None, chart: Path | None, limits: MemoryLimits | None = None) -> str:
    """The text report of a run (default: the newest), writing the chart beside HOLD₂."""
    layout = HoldLayout(hold_dir.resolve())
    limits = limits or memory_limits()
    with _connect(layout) as con:
        run_id = run_id or latest_run(con)
        text = stage_table(con, run_id)
        points = timeline(con, run_id)
    written = memory_chart(points, run_id, chart or layout.run_dir(run_id) / "memory.png", limits)
    return f"{text}\n{describe(points, limits)}\nchart: {written}"
