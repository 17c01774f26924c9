"""Reading HOLD₂'s segment files in tests, whatever their format (Parquet or JSONL, by suffix)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

SUFFIXES = (".parquet", ".jsonl")


def read_segment(path: Path) -> pl.DataFrame:
    """A segment's staged rows."""
    return pl.read_parquet(path) if path.suffix == ".parquet" else pl.read_ndjson(path)


def segment_files(hold: Path, run: str = "*") -> list[Path]:
    """The segment files of a hold dir's runs (one run, or all), in run and batch order."""
    return sorted(p for p in hold.glob(f"runs/{run}/segments/batch-*") if p.suffix in SUFFIXES)
