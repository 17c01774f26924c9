"""Pytest fixtures for the local-bigquery emulator (pytest_plugins = ["tests.emulator.fixtures"]).

- bigquery_emulator (session): one running BigQueryEmulator for the whole session. Runs
  setup.sh first if the emulator is not installed; skips only when setup.sh exits 3 (no
  Python 3.13 on the machine), any other setup or start-up failure errors the tests.
- bigquery_client (session): google.cloud.bigquery.Client with AnonymousCredentials and
  client_options={"api_endpoint": emulator.endpoint}. Nothing global is changed.
- bigquery_dataset (function): a fresh, uniquely named dataset, deleted with its contents after.
- bigquery_emulator_env (function): for code that builds its own Client. Sets (via monkeypatch,
  undone after the test) BIGQUERY_EMULATOR_HOST to the full URL "http://127.0.0.1:PORT" (a bare
  host:port fails) and GOOGLE_CLOUD_PROJECT to the emulator's project. Such code must still pass
  credentials (e.g. AnonymousCredentials()): without them the client raises DefaultCredentialsError.
"""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator

import pytest
from google.cloud import bigquery

from tests.emulator.server import SETUP_SCRIPT, BigQueryEmulator, emulator_executable

_NO_PYTHON = 3  # setup.sh's exit code when no Python 3.13 exists


def _ensure_installed() -> None:
    """Run setup.sh when the emulator is missing; skip on exit 3, fail on anything else."""
    if emulator_executable() is not None:
        return
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    if proc.returncode == _NO_PYTHON:
        pytest.skip(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no Python 3.13 for the BigQuery emulator"
        )
    if proc.returncode != 0 or emulator_executable() is None:
        pytest.fail(
            f"{SETUP_SCRIPT} failed with exit code {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def bigquery_emulator() -> Iterator[BigQueryEmulator]:
    """One running local-bigquery emulator for the test session."""
    _ensure_installed()
    with BigQueryEmulator() as emulator:
        yield emulator


@pytest.fixture(scope="session")
def bigquery_client(bigquery_emulator: BigQueryEmulator) -> Iterator[bigquery.Client]:
    """A google-cloud-bigquery Client bound to the session's emulator."""
    client = bigquery_emulator.client()
    yield client
    client.close()


@pytest.fixture
def bigquery_dataset(bigquery_client: bigquery.Client) -> Iterator[bigquery.Dataset]:
    """A fresh dataset in the emulator, deleted with its contents after the test."""
    dataset = bigquery_client.create_dataset(f"test_{uuid.uuid4().hex[:12]}")
    yield dataset
    bigquery_client.delete_dataset(dataset, delete_contents=True, not_found_ok=True)


@pytest.fixture
def bigquery_emulator_env(bigquery_emulator: BigQueryEmulator, monkeypatch: pytest.MonkeyPatch) -> BigQueryEmulator:
    """Point clients built elsewhere at the emulator via BIGQUERY_EMULATOR_HOST for one test."""
    monkeypatch.setenv("BIGQUERY_EMULATOR_HOST", bigquery_emulator.endpoint)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", bigquery_emulator.project)
    return bigquery_emulator
