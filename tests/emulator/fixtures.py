"""Pytest fixtures for the local-bigquery and gcp-storage-emulator emulators.

Enable with pytest_plugins = ["tests.emulator.fixtures"].

- gcs_emulator (session): one running StorageEmulator (Cloud Storage) for the whole session.
  Runs setup.sh first if the emulators are not installed (skip/fail rules as below).
- gcs_bucket (function): a fresh bucket "stage-<hex>" (google.cloud.storage.Bucket, its client
  bound to gcs_emulator), deleted with its objects after the test.
- gcs_emulator_env (function): sets STORAGE_EMULATOR_HOST (monkeypatch, undone after the test)
  to gcs_emulator's "http://127.0.0.1:PORT", for code that builds its own storage.Client (it
  still needs credentials, e.g. AnonymousCredentials()).
- bigquery_emulator (session): one running BigQueryEmulator for the whole session, started with
  storage_emulator_host=gcs_emulator.endpoint so load jobs read gs:// URIs from gcs_emulator.
  Runs setup.sh first if the emulator is not installed; skips only when setup.sh exits 3 (no
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
from google.api_core.exceptions import NotFound
from google.cloud import bigquery, storage

from tests.emulator.server import SETUP_SCRIPT, BigQueryEmulator, emulator_executable
from tests.emulator.storage_server import StorageEmulator, storage_executable

_NO_PYTHON = 3  # setup.sh's exit code when no Python 3.13 exists


def _ensure_installed() -> None:
    """Run setup.sh when an emulator is missing; skip on exit 3, fail on anything else."""
    if emulator_executable() is not None and storage_executable() is not None:
        return
    proc = subprocess.run(
        ["bash", str(SETUP_SCRIPT)], capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL
    )
    if proc.returncode == _NO_PYTHON:
        pytest.skip(
            proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "no Python 3.13 for the BigQuery emulator"
        )
    if proc.returncode != 0 or emulator_executable() is None or storage_executable() is None:
        pytest.fail(
            f"{SETUP_SCRIPT} failed with exit code {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def gcs_emulator() -> Iterator[StorageEmulator]:
    """One running Cloud Storage emulator for the test session."""
    _ensure_installed()
    with StorageEmulator() as emulator:
        yield emulator


@pytest.fixture
def gcs_bucket(gcs_emulator: StorageEmulator) -> Iterator[storage.Bucket]:
    """A fresh bucket in the Cloud Storage emulator, deleted with its objects after the test."""
    client = gcs_emulator.client()
    bucket = client.create_bucket(f"stage-{uuid.uuid4().hex[:12]}")
    yield bucket
    try:  # delete(force=True) refuses more than 256 objects
        for blob in client.list_blobs(bucket):
            blob.delete()
        bucket.delete()
    except NotFound:
        pass  # the test deleted it
    finally:
        client.close()


@pytest.fixture
def gcs_emulator_env(gcs_emulator: StorageEmulator, monkeypatch: pytest.MonkeyPatch) -> StorageEmulator:
    """Point storage clients built elsewhere at the emulator via STORAGE_EMULATOR_HOST for one test."""
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.endpoint)
    return gcs_emulator


@pytest.fixture(scope="session")
def bigquery_emulator(gcs_emulator: StorageEmulator) -> Iterator[BigQueryEmulator]:
    """One running local-bigquery emulator for the test session, reading gs:// from gcs_emulator."""
    _ensure_installed()
    with BigQueryEmulator(storage_emulator_host=gcs_emulator.endpoint) as emulator:
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
