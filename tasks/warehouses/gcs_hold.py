"""A durable HOLD₂ in Cloud Storage (`--hold-url gs://BUCKET/PREFIX`): the `HoldMirror` of
tasks/storage/mirror.py.

Under the prefix, named as in a hold dir:

    lease.json                                   the one writer's lease (tasks/warehouses/gcs_lease.py)
    journal/000000000042.json|.parquet           change 42 of HOLD₂'s database (tasks/core/journal.py)
    runs/<run>/segments/batch-000007.parquet     batch 7's staged rows
    runs/<run>/quarantine/batch-000007.jsonl     batch 7's rejected records (and side files)

Journal entries are created only if absent (`ifGenerationMatch=0`): a writer whose lease was
taken over cannot add the entry its successor added (it is fenced), and a request retried after
its answer was lost finds its own bytes there. Files are created only if absent too; one that is
there with other bytes is a crashed attempt's, no journal entry names it, and it is replaced by
naming its generation. The lease is renewed in a thread every third of its time to live, for as
long as the store is open. Every request goes through the request layer of the retry table
(`call_with_retries`), and what remains is one line naming the bucket and what to do.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from google.api_core.exceptions import NotFound, PreconditionFailed

from bqhold.tasks.core.atomic import atomic_write_to
from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.inputs import crc32c_of
from bqhold.tasks.core.journal import JOURNAL_FOLDER, JournalEntry, decode, encode, seq_of
from bqhold.tasks.core.lease import LeaseHolder
from bqhold.tasks.core.retry import RequestRetries
from bqhold.tasks.core.segment_files import CONTENT_TYPES
from bqhold.tasks.core.staging_bucket import gs_uri, parse_gs_url
from bqhold.tasks.warehouses.gcs_lease import GcsLease
from bqhold.tasks.warehouses.google_api import STORAGE_HINTS, UPLOAD_CHUNK_BYTES, call_with_retries

if TYPE_CHECKING:
    from google.cloud import storage
    from prefect_gcp import GcpCredentials

T = TypeVar("T")
logger = logging.getLogger("bqhold.gcs_hold")


class GcsHold:
    """A durable HOLD₂ under `prefix` of `bucket`, whose lease `lease` this process holds."""

    def __init__(
        self,
        bucket: storage.Bucket,
        prefix: str,
        lease: GcsLease,
        *,
        retries: RequestRetries,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.bucket, self.prefix, self.lease = bucket, prefix, lease
        self.where = gs_uri(bucket.name, prefix).rstrip("/")
        self.policy, self.timeout_s, self.sleep = retries.policy, retries.request_timeout_s, sleep
        self._closed = threading.Event()
        self._lost: str | None = None  # why the lease is no longer this run's
        self._renewer = threading.Thread(target=self._renew, name="bqhold-lease", daemon=True)
        self._renewer.start()

    def _call(self, doing: str, call: Callable[[], T]) -> T:
        return call_with_retries(call, doing, self.policy, self.sleep, "Cloud Storage", STORAGE_HINTS)

    def _uri(self, name: str) -> str:
        return gs_uri(self.bucket.name, self.prefix + name)

    def _renew(self) -> None:
        while not self._closed.wait(self.lease.ttl_s / 3):
            try:
                self._call(f"renewing the lease on {self.where}", self.lease.renew)
            except StateError as exc:
                self._lost = str(exc)
                return
            except Exception as exc:  # the next renewal tries again; the journal fences regardless
                logger.warning("the lease on %s was not renewed this time: %s", self.where, exc)

    # -- the journal --------------------------------------------------------------------

    def entries_from(self, seq: int) -> Iterator[JournalEntry]:
        folder = self.prefix + JOURNAL_FOLDER
        names = self._call(
            f"listing {self._uri(JOURNAL_FOLDER)}",
            lambda: [
                blob.name
                for blob in self.bucket.list_blobs(
                    prefix=folder, start_offset=f"{folder}{seq:012d}", timeout=self.timeout_s, retry=None
                )
            ],
        )
        numbered = sorted((n, name) for name in names if (n := seq_of(name[len(folder) :])) is not None and n >= seq)
        for _, name in numbered:
            data = self._call(
                f"reading {gs_uri(self.bucket.name, name)}",
                lambda name=name: self.bucket.blob(name).download_as_bytes(timeout=self.timeout_s, retry=None),
            )
            yield decode(name[len(folder) :], data)

    def append(self, entry: JournalEntry) -> None:
        if self._lost:
            raise StateError(self._lost)
        data, name = encode(entry), self.prefix + entry.name
        blob = self.bucket.blob(name)

        def create() -> bool:
            try:
                blob.upload_from_string(data, if_generation_match=0, timeout=self.timeout_s, retry=None)
                return True
            except PreconditionFailed:
                return False

        if self._call(f"writing {self._uri(entry.name)}", create):
            return
        there = self._call(
            f"reading {self._uri(entry.name)}", lambda: blob.download_as_bytes(timeout=self.timeout_s, retry=None)
        )
        if there != data:  # not this run's own write, retried after its answer was lost
            raise StateError(
                f"{self.where}: another run wrote change {entry.seq} of this HOLD₂ meanwhile (this run's lease was "
                "taken over); this run stopped before writing more: run again to resume"
            )

    # -- files ----------------------------------------------------------------------------

    def put(self, path: Path, name: str) -> None:
        blob = self.bucket.blob(self.prefix + name, chunk_size=UPLOAD_CHUNK_BYTES)
        doing = f"uploading {path.name} to {self._uri(name)}"

        def upload(generation: int) -> bool:
            try:
                blob.upload_from_filename(
                    str(path),
                    content_type=CONTENT_TYPES.get(path.suffix, "application/octet-stream"),
                    if_generation_match=generation,
                    timeout=self.timeout_s,
                    retry=None,
                )
                return True
            except PreconditionFailed:
                return False

        if self._call(doing, lambda: upload(0)):
            return
        there = self._call(doing, lambda: self.bucket.get_blob(blob.name, timeout=self.timeout_s, retry=None))
        if there is not None and there.size == path.stat().st_size and there.crc32c == _crc32c_b64(path):
            return  # the same bytes (this upload, retried after its answer was lost)
        if not self._call(doing, lambda: upload(there.generation if there is not None else 0)):
            raise StateError(f"{self._uri(name)} was changed by another run meanwhile; run again to resume")

    def names(self, prefix: str) -> list[str]:
        """The files whose names start with `prefix`, sorted."""
        return self._call(
            f"listing {self._uri(prefix)}",
            lambda: sorted(
                blob.name[len(self.prefix) :]
                for blob in self.bucket.list_blobs(prefix=self.prefix + prefix, timeout=self.timeout_s, retry=None)
            ),
        )

    def fetch(self, name: str, path: Path) -> bool:
        blob = self.bucket.blob(self.prefix + name, chunk_size=UPLOAD_CHUNK_BYTES)

        def write(temp: Path) -> None:
            blob.download_to_filename(str(temp), timeout=self.timeout_s, retry=None)

        def download() -> bool:
            try:
                atomic_write_to(path, write)
                return True
            except NotFound:
                return False

        return self._call(f"downloading {self._uri(name)}", download)

    def delete(self, names: list[str]) -> None:
        for name in names:

            def remove(name: str = name) -> None:
                try:
                    self.bucket.delete_blob(self.prefix + name, timeout=self.timeout_s, retry=None)
                except NotFound:
                    pass  # already gone

            self._call(f"deleting {self._uri(name)}", remove)

    def close(self) -> None:
        self._closed.set()
        self._renewer.join()
        try:
            self.lease.release()
        except Exception as exc:  # it expires on its own
            logger.warning("the lease on %s was not released (it expires by itself): %s", self.where, exc)


def _crc32c_b64(path: Path) -> str:
    """A file's crc32c as Cloud Storage shows it (base64 of the big-endian bytes)."""
    return base64.b64encode(crc32c_of(str(path)).to_bytes(4, "big")).decode()


def open_gcs_hold(
    url: str,
    holder: LeaseHolder,
    ttl_s: float,
    credentials: GcpCredentials | None,
    retries: RequestRetries,
) -> GcsHold:
    """The durable HOLD₂ `url` names, once its lease is this run's (else one line: who holds it)."""
    from bqhold.tasks.warehouses.google_api import make_storage_client

    spec = parse_gs_url(url, "--hold-url")
    # client.bucket() makes no request, so objectAdmin on the bucket is enough (no buckets.get).
    bucket = make_storage_client(None, credentials).bucket(spec.bucket)
    lease = GcsLease(bucket, spec.folder, holder, ttl_s)
    call_with_retries(
        lease.acquire, f"taking the lease on {url}", retries.policy, service="Cloud Storage", hints=STORAGE_HINTS
    )
    return GcsHold(bucket, spec.folder, lease, retries=retries)
