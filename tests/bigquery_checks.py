"""How tests name a dataset of the BigQuery emulator (its tables, its --warehouse URL), what they read
back from it (row counts, a run's load jobs), and how a proxy plays the slow load jobs it cannot."""

from __future__ import annotations

import json

from google.cloud import bigquery


def table_id(dataset: bigquery.Dataset, table: str) -> str:
    """`project.dataset.table` of a table in a test's dataset."""
    return f"{dataset.project}.{dataset.dataset_id}.{table}"


def warehouse_url(dataset: bigquery.Dataset) -> str:
    """The `--warehouse` URL of a test's dataset."""
    return f"bigquery://{dataset.project}/{dataset.dataset_id}"


def count(client: bigquery.Client, dataset: bigquery.Dataset, table: str, where: str = "TRUE") -> int:
    """Rows of `table` matching `where`."""
    sql = f"SELECT COUNT(*) AS n FROM `{table_id(dataset, table)}` WHERE {where}"
    return next(iter(client.query(sql).result()))["n"]


def counts(client: bigquery.Client, dataset: bigquery.Dataset, table: str, key: str = "event_id") -> tuple[int, int]:
    """(rows, distinct keys) of `table`: equal when every record is there once."""
    sql = f"SELECT COUNT(*) AS n, COUNT(DISTINCT {key}) AS d FROM `{table_id(dataset, table)}`"
    row = next(iter(client.query(sql).result()))
    return row["n"], row["d"]


def job_ids_of(client: bigquery.Client, run_id: str) -> list[str]:
    """The ids of a run's load jobs (the emulator is shared by the session)."""
    return [job.job_id for job in client.list_jobs() if job.job_id.startswith(f"bqhold_{run_id}-b")]


def load_jobs_of(client: bigquery.Client, run_id: str) -> list[bigquery.LoadJob]:
    """A run's load jobs, fully fetched (source URIs included)."""
    return [client.get_job(job_id) for job_id in job_ids_of(client, run_id)]


def creates_load_job(method: str, path: str) -> bool:
    """The request whose arrival creates a load job: a multipart POST or the last resumable PUT."""
    return (
        "/upload/" in path
        and "/jobs" in path
        and ((method == "POST" and "uploadType=multipart" in path) or (method == "PUT" and "upload_id=" in path))
    )


class RunningLoadJobs:
    """A FaultProxy rewrite that reports bqhold's load jobs as still RUNNING.

    The emulator runs every job to its end within its one-second submit wait, so a slow or stuck
    BigQuery job is played by the proxy: `stuck` jobs never finish; otherwise a job is RUNNING
    until bqhold cancels it, and then shows its true (finished) state.
    """

    def __init__(self, stuck: bool = True) -> None:
        self.stuck = stuck
        self.cancelled: list[str] = []
        self.running_answers = 0  # how many answers said RUNNING

    def rewrite(self, method: str, path: str, body: bytes) -> bytes:
        """The proxy's rewrite: a bqhold load job's DONE becomes RUNNING while it should run."""
        if method == "POST" and path.split("?")[0].endswith("/cancel"):
            self.cancelled.append(path)
        try:
            resource = json.loads(body)
        except ValueError:
            return body
        job = resource.get("job", resource) if isinstance(resource, dict) else None
        job_id = (job or {}).get("jobReference", {}).get("jobId") or ""
        if not job_id.startswith("bqhold_") or (self.cancelled and not self.stuck):
            return body
        job["status"] = {"state": "RUNNING"}
        self.running_answers += 1
        return json.dumps(resource).encode()
