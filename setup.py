"""Installs the top-level folders flows/, tasks/ and blocks/ as bqhold.flows, bqhold.tasks and
bqhold.blocks (their subpackages follow), so their import names cannot collide with a user's
own `flows/` or `tasks.py`. `bqhold` itself is a namespace package with no folder of its own:
a checkout's working directory can then never shadow the installed package. Everything else is
in pyproject.toml."""

from setuptools import find_packages, setup

FOLDERS = ("flows", "tasks", "blocks")
setup(
    packages=[f"bqhold.{package}" for package in find_packages(include=[f"{folder}*" for folder in FOLDERS])],
    package_dir={f"bqhold.{folder}": folder for folder in FOLDERS},
)
