"""A really full disk for tests: commands run with a directory mounted as a small tmpfs.

    results = on_small_disk(hold_dir, "3m", [{"run": argv}, {"resize": "64m"}, {"run": argv}], env)

The mount lives in a private mount namespace (`unshare --mount`, root only) that this module
enters as a driver process: nothing outside sees it, and it disappears with the driver, whatever
happens. Each `run` step answers {"code", "stdout", "stderr", "read"}, where `read` holds the text
of the files the step lists under "read" (None if missing) after the command ended; `resize`
remounts the directory with a new size (the data on it stays), as freeing space would.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys


def small_disk_available() -> bool:
    """True when this process may create mount namespaces (root with `unshare`)."""
    return os.geteuid() == 0 and shutil.which("unshare") is not None


def on_small_disk(directory: str, size: str, steps: list[dict], env: dict[str, str], timeout: float = 300) -> list:
    """Run `steps` with `directory` on a tmpfs of `size`; one answer per `run` step."""
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", sys.executable, __file__, directory, size],
        input=json.dumps(steps),
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"small-disk driver failed ({done.returncode}): {done.stderr}")
    return json.loads(done.stdout)


def _mount(directory: str, size: str, remount: bool = False) -> None:
    options = f"remount,size={size}" if remount else f"size={size}"
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", directory], check=True)


def _text(path: str) -> str | None:
    try:
        with open(path) as handle:
            return handle.read()
    except OSError:
        return None


def _driver(directory: str, size: str) -> None:
    os.makedirs(directory, exist_ok=True)
    _mount(directory, size)
    answers = []
    for step in json.loads(sys.stdin.read()):
        if "resize" in step:
            _mount(directory, step["resize"], remount=True)
            continue
        done = subprocess.run(step["run"], capture_output=True, text=True, env=os.environ)
        read = {path: _text(path) for path in step.get("read", [])}
        answers.append({"code": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "read": read})
    print(json.dumps(answers))


if __name__ == "__main__":
    _driver(sys.argv[1], sys.argv[2])
