"""The allocators hand freed memory back at once wherever bqhold runs (flows/__init__.py): the
local command, the image and the deployments' job variables say the same, and a user's own
setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from bqhold.flows import ALLOCATOR_SETTINGS
from tests.conftest import ROOT

# A process frees a 160 MB polars frame and prints how many MB of RSS that handed back.
_FREED_MB = """
import sys
if sys.argv[1] == "bqhold":
    import bqhold.flows
import polars as pl, psutil
rss = lambda: psutil.Process().memory_info().rss / 2**20
frame = pl.DataFrame({"x": range(20_000_000)})
before = rss()
del frame
print(round(before - rss()))
"""


def _freed_mb(first: str) -> int:
    # This process imported bqhold.flows: its environment already holds the setting.
    env = {name: value for name, value in os.environ.items() if name not in ALLOCATOR_SETTINGS}
    done = subprocess.run([sys.executable, "-c", _FREED_MB, first], env=env, capture_output=True, text=True, check=True)
    return int(done.stdout)


def test_a_frame_polars_frees_leaves_the_process_at_once():
    assert _freed_mb("polars") < 20  # polars' own setting keeps the pages a while
    assert _freed_mb("bqhold") >= 140


def test_the_image_and_the_deployments_set_what_the_package_sets():
    dockerfile = (ROOT / "Dockerfile").read_text()
    env = yaml.safe_load((ROOT / "prefect.yaml").read_text())["definitions"]["env"]

    for name, value in ALLOCATOR_SETTINGS.items():
        assert f"{name}={value}" in dockerfile
        assert env[name] == value


def test_a_users_own_allocator_setting_is_kept():
    code = "import os, bqhold.flows; print(os.environ['_RJEM_MALLOC_CONF'])"
    env = {**os.environ, "_RJEM_MALLOC_CONF": "background_thread:true"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "background_thread:true"
