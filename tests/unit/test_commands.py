"""The commands messages name carry the hold dir the user works with."""

from pathlib import Path

from bqhold.tasks.core.commands import run_command
from bqhold.tasks.core.options import DEFAULT_HOLD_DIR


def test_the_default_hold_dir_is_left_out_relative_or_resolved():
    assert run_command("repair", "r1") == "python flows/run.py repair --run-id r1"
    assert run_command("repair", "r1", Path(DEFAULT_HOLD_DIR)) == "python flows/run.py repair --run-id r1"
    assert run_command("repair", "r1", Path(DEFAULT_HOLD_DIR).resolve()) == "python flows/run.py repair --run-id r1"


def test_another_hold_dir_is_named():
    assert run_command("abandon", "r1", "/data/hold") == "python flows/run.py abandon --run-id r1 --hold-dir /data/hold"
