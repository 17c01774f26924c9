"""Tests of the test harness itself (the fault proxy, the BigQuery and Cloud Storage emulators): what the
tests of bqhold stand on, kept apart so that tests/integration and tests/e2e are about bqhold only."""
