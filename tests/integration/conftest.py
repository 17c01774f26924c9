"""Fixtures the integration tests share (the emulators' own are in tests/emulator/fixtures.py)."""

from __future__ import annotations

import pytest
from google.cloud import bigquery

from tests.bigquery_checks import warehouse_url


@pytest.fixture
def target(bigquery_emulator_env, bigquery_dataset: bigquery.Dataset) -> str:
    """A warehouse URL for a fresh emulator dataset (BIGQUERY_EMULATOR_HOST is set)."""
    return warehouse_url(bigquery_dataset)
