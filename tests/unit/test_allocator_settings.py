"""Polars' allocator hands freed memory back at once wherever bqhold runs (flows/__init__.py):
the local command, the image and the deployments' job variables say the same, and a user's own
setting wins."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

from bqhold.flows import ALLOCATOR_SETTINGS
from tests.conftest import ROOT


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
