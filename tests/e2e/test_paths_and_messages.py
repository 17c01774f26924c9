"""Unusable paths and inputs are refused in one line naming the path and the option to change
(exit 2, nothing staged), whether the CLI or a deployment's flow run meets them."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.events import write as write_events
from bqhold.flows.generic import generic_flow
from tests.conftest import Workspace, runs_in


@contextmanager
def read_only(directory: Path) -> Iterator[None]:
    """`directory` cannot be written, even by root (chattr +i), until the block ends."""
    if os.geteuid() != 0:
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(0o755)
        return
    if not shutil.which("chattr") or subprocess.run(["chattr", "+i", str(directory)], capture_output=True).returncode:
        pytest.skip("root cannot make a directory read-only here (no chattr +i on this filesystem)")
    try:
        yield
    finally:
        subprocess.run(["chattr", "-i", str(directory)], check=True)


def a_file(root: Path) -> Path:
    path = root / "not-a-directory"
    path.write_text("a file where a directory was meant\n")
    return path


# (arguments for the CLI given the workspace root, the flag the message names, the path it names)
BAD_PATHS: list[tuple[str, Callable[[Path], tuple[list[str], str, Path]]]] = [
    ("hold-dir-is-a-file", lambda r: (["--hold-dir", str(a_file(r))], "--hold-dir", r / "not-a-directory")),
    (
        "warehouse-parent-is-a-file",
        lambda r: (["--warehouse", f"duckdb://{a_file(r)}/w.duckdb"], "--warehouse", r / "not-a-directory"),
    ),
    (
        "warehouse-parent-cannot-be-created",
        lambda r: (["--warehouse", f"duckdb://{a_file(r)}/sub/w.duckdb"], "--warehouse", r / "not-a-directory"),
    ),
    ("warehouse-is-a-directory", lambda r: (["--warehouse", f"duckdb://{r}"], "--warehouse", r)),
]


@pytest.mark.parametrize("make", [make for _, make in BAD_PATHS], ids=[name for name, _ in BAD_PATHS])
def test_an_unusable_path_exits_2_naming_it_and_its_flag(workspace: Workspace, make) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=20)
    args, flag, path = make(workspace.root)
    result = workspace.cli("--input", str(data), *args)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("bqhold: ") and flag in line and str(path) in line, line
    assert "resume" not in line and "in use" not in line, line
    assert runs_in(workspace.hold) == [], "nothing was staged for a run that could never load"


def test_a_read_only_hold_dir_is_not_called_in_use(workspace: Workspace) -> None:
    data = write_events(workspace.root / "events.jsonl", rows=20)
    assert workspace.cli("--input", str(data)).code == 0  # an existing HOLD₂, then made read-only
    with read_only(workspace.hold):
        result = workspace.cli("--input", str(data), "--fresh")
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    (line,) = result.stderr.strip().splitlines()
    assert "--hold-dir" in line and str(workspace.hold) in line and "not writable" in line, line
    assert "in use" not in line and "resume" not in line, line


def test_a_fifo_input_is_not_a_regular_file_not_empty(workspace: Workspace) -> None:
    fifo = workspace.root / "events.jsonl"
    os.mkfifo(fifo)
    result = workspace.cli("--input", str(fifo))
    assert result.code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert str(fifo) in line and "not a regular file" in line and "empty" not in line, line


@pytest.mark.parametrize("make", [BAD_PATHS[0][1], BAD_PATHS[1][1]], ids=["hold-dir-is-a-file", "warehouse-parent"])
def test_a_deployment_run_refuses_an_unusable_path_in_one_line(prefect_api: str, tmp_path: Path, make) -> None:
    data = write_events(tmp_path / "events.jsonl", rows=20)
    args, flag, path = make(tmp_path)
    parameters = {"hold_dir": str(tmp_path / "hold"), "warehouse": f"duckdb://{tmp_path / 'w.duckdb'}"}
    parameters[args[0].lstrip("-").replace("-", "_")] = args[1]  # --hold-dir -> hold_dir
    state = generic_flow(input=str(data), **parameters, return_state=True)
    assert state.is_failed()
    assert flag in state.message and str(path) in state.message and "\n" not in state.message, state.message
    assert not (tmp_path / "hold" / "runs").exists() or runs_in(tmp_path / "hold") == []
