"""Segment files staged as objects in a Cloud Storage bucket, for load jobs that read by URI.

Each file a load sends (each JSONL segment, or a group's one Parquet file) becomes one object
named by its hold dir, run and file (`<folder>bqhold/<hold id>/<run>/batch-N.jsonl`,
`…/load-<run>-bFIRST-LAST.parquet`), so a retry or a re-run finds what it already uploaded and
sends only what is missing; GCS makes
an object visible only once it is complete, so a present object of the right size is the file.
Objects are removed once the load job that read them has succeeded; a run abandoned after a
failure leaves its objects behind (a bucket lifecycle rule should expire `bqhold/` objects).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from bqhold.tasks.core.errors import BqholdError, WarehouseNotFound
from bqhold.tasks.core.retry import RequestRetries
from bqhold.tasks.core.segment_files import CONTENT_TYPES
from bqhold.tasks.core.staging_bucket import gs_uri, object_name, parse_staging_bucket
from bqhold.tasks.warehouses.google_api import (
    STORAGE_HINTS,
    UPLOAD_CHUNK_BYTES,
    call_with_retries,
    load_gcp_block,
    make_storage_client,
)

if TYPE_CHECKING:
    from google.cloud import storage
    from prefect_gcp import GcpCredentials

T = TypeVar("T")
logger = logging.getLogger("bqhold.gcs_staging")
# A load job reading by URI takes up to 10,000 files and 15 TB, and nothing passes through this
# machine: groups are bounded by their batch count and this many bytes, not by an upload.
GCS_MAX_GROUP_BYTES = 16 << 30


class GcsStaging:
    """Upload a load group's segments to a bucket, and remove them once loaded."""

    max_group_bytes = GCS_MAX_GROUP_BYTES

    def __init__(
        self,
        bucket: storage.Bucket,
        folder: str = "",
        *,
        retries: RequestRetries,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bucket, self.folder = bucket, folder
        self.policy, self.request_timeout_s, self.sleep = retries.policy, retries.request_timeout_s, sleep

    def describe(self) -> str:
        """The bucket and folder, as a gs:// URL."""
        return gs_uri(self.bucket.name, self.folder)

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        return call_with_retries(call, doing, self.policy, self.sleep, "Cloud Storage", STORAGE_HINTS)

    def uris(self, hold_id: str, run_id: str, files: list[Path]) -> list[str]:
        """The URIs the files are staged at (no request made)."""
        return [gs_uri(self.bucket.name, object_name(self.folder, hold_id, run_id, path.name)) for path in files]

    def stage(self, hold_id: str, run_id: str, files: list[Path]) -> list[str]:
        """Upload the files not already staged; return the URIs of all of them, in order."""
        prefix = object_name(self.folder, hold_id, run_id, "")
        present = self._call(
            f"listing {gs_uri(self.bucket.name, prefix)}",
            lambda: {
                blob.name: blob.size
                for blob in self.bucket.list_blobs(prefix=prefix, timeout=self.request_timeout_s, retry=None)
            },
        )
        for path in files:
            name = object_name(self.folder, hold_id, run_id, path.name)
            if present.get(name) == os.path.getsize(path):
                continue
            # The request layer retries the whole object (retry=None: no upload layer inside, see
            # tasks/core/retry.py); one segment is one batch, so a resend is small.
            blob = self.bucket.blob(name, chunk_size=UPLOAD_CHUNK_BYTES)
            self._call(
                f"uploading {path.name} to {gs_uri(self.bucket.name, name)}",
                lambda blob=blob, path=path: blob.upload_from_filename(
                    str(path), content_type=CONTENT_TYPES[path.suffix], timeout=self.request_timeout_s, retry=None
                ),
            )
        return self.uris(hold_id, run_id, files)

    def remove(self, hold_id: str, run_id: str, files: list[Path]) -> None:
        """Delete the staged objects of these files. Best effort: they are no longer needed, and
        a failure here must not fail a delivery that succeeded."""
        for path in files:
            name = object_name(self.folder, hold_id, run_id, path.name)
            try:
                self._call(
                    f"deleting {gs_uri(self.bucket.name, name)}",
                    lambda name=name: self.bucket.delete_blob(name, timeout=self.request_timeout_s, retry=None),
                )
            except WarehouseNotFound:
                pass  # already gone
            except BqholdError as exc:
                logger.warning("staged object left in place: %s", exc)


def open_staging(
    value: str,
    project: str,
    credentials: GcpCredentials | None,
    retries: RequestRetries,
) -> GcsStaging:
    """The staging `value` names: `gs://BUCKET[/FOLDER]`, reached with `credentials`, or a
    prefect-gcp GcsBucket block, which names its bucket and folder and brings its own."""
    spec = parse_staging_bucket(value)
    if spec.block is not None:
        from prefect_gcp.cloud_storage import GcsBucket

        block = load_gcp_block(GcsBucket, spec.block)
        spec, credentials = parse_staging_bucket(f"gs://{block.bucket}/{block.bucket_folder}"), block.gcp_credentials
    assert spec.bucket is not None
    # client.bucket() makes no request, so objectAdmin on the bucket is enough (no buckets.get).
    bucket = make_storage_client(project, credentials).bucket(spec.bucket)
    return GcsStaging(bucket, spec.folder, retries=retries)
