"""Real BigQuery emulator (local-bigquery) for tests: setup.sh installs it, server.py runs it."""
