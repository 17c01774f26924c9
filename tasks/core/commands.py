"""The commands bqhold's messages tell a user to run, written for the hold dir they use."""

from __future__ import annotations

from pathlib import Path

from bqhold.tasks.core.options import DEFAULT_HOLD_DIR


def run_command(name: str, run_id: str, hold_dir: Path | str | None = None) -> str:
    """`python flows/run.py NAME --run-id RUN`, with `--hold-dir` unless it is the default one."""
    default = Path(DEFAULT_HOLD_DIR)
    here = Path(hold_dir) if hold_dir is not None else default
    where = "" if here in (default, default.resolve()) else f" --hold-dir {here}"
    return f"python flows/run.py {name} --run-id {run_id}{where}"
