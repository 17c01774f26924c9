"""The lease on a durable HOLD₂ prefix, as one Cloud Storage object (`<prefix>/lease.json`).

- `acquire` creates it only if absent (`ifGenerationMatch=0`); if present and expired by the
  bucket's clock, it takes it over by naming the generation it found, so of two runs taking
  over at once one wins; otherwise it refuses with one line (StateError, exit 1).
- `renew` rewrites it naming the generation this run last wrote: a run whose lease was taken
  over meanwhile is fenced (StateError) before it writes anything more.
- `release` deletes it, naming the same generation: never a lease another run took.

Each method makes its requests without the client's own retries (`retry=None`): the caller
retries the whole step (tasks/warehouses/gcs_hold.py, through the request layer). A step retried
after its answer was lost finds the lease holding this run's own bytes, and keeps it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from google.api_core.exceptions import NotFound, PreconditionFailed

from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.lease import LeaseHolder, expired, in_use_message

if TYPE_CHECKING:
    from google.cloud import storage

LEASE_OBJECT = "lease.json"
DEFAULT_TTL_S = 300.0  # a dead container's lease is taken over after 5 minutes


class GcsLease:
    """This run's lease on `prefix` of `bucket` (acquire, renew, release)."""

    def __init__(self, bucket: storage.Bucket, prefix: str, holder: LeaseHolder, ttl_s: float = DEFAULT_TTL_S) -> None:
        self.bucket, self.holder, self.ttl_s = bucket, holder, ttl_s
        self.name = f"{prefix.strip('/')}/{LEASE_OBJECT}" if prefix.strip("/") else LEASE_OBJECT
        self.where = f"gs://{bucket.name}/{prefix.strip('/')}"
        self.generation: int | None = None  # of the lease object this run last wrote

    def acquire(self) -> None:
        """Take the lease, or raise StateError naming the run that holds it."""
        try:
            self._write(0)
            return
        except PreconditionFailed:
            pass
        current = self.bucket.get_blob(self.name, retry=None)
        if current is None:  # released between the two requests: try once more from scratch
            self._write_or_refuse(0)
            return
        if self._is_mine(current):
            return
        now = datetime.now(UTC)
        if not expired(current.updated, self.ttl_s, now):
            try:  # only for the message: who held it when it was looked at
                holder = LeaseHolder.from_bytes(current.download_as_bytes(retry=None))
            except NotFound:
                holder = LeaseHolder.from_bytes(b"")
            raise StateError(in_use_message(self.where, holder, current.updated, self.ttl_s, now))
        self._write_or_refuse(current.generation)

    def renew(self) -> None:
        """Extend the lease; StateError if another run took it over (this run must stop writing)."""
        try:
            self._write(self._held())
        except PreconditionFailed:
            current = self.bucket.get_blob(self.name, retry=None)
            if current is not None and self._is_mine(current):
                return  # this very renewal, whose answer was lost
            self.generation = None
            raise StateError(
                f"{self.where}: this run's lease was taken over by another run; it stopped before writing more"
            ) from None

    def release(self) -> None:
        """Give the lease up, if this run still holds it."""
        if self.generation is None:
            return
        try:
            self.bucket.blob(self.name).delete(if_generation_match=self.generation, retry=None)
        except (PreconditionFailed, NotFound):
            pass  # taken over, or gone: not this run's to delete
        self.generation = None

    def _held(self) -> int:
        if self.generation is None:
            raise StateError(f"{self.where}: this run holds no lease")
        return self.generation

    def _is_mine(self, current: storage.Blob) -> bool:
        """Whether the lease object holds this run's own bytes (a write whose answer was lost);
        if so, this run holds it at that generation."""
        try:
            held = current.download_as_bytes(if_generation_match=current.generation, retry=None)
            mine = held == self.holder.to_bytes()
        except (NotFound, PreconditionFailed):
            return False
        if mine:
            self.generation = current.generation
        return mine

    def _write(self, expected_generation: int) -> None:
        blob = self.bucket.blob(self.name)
        blob.upload_from_string(
            self.holder.to_bytes(),
            content_type="application/json",
            if_generation_match=expected_generation,
            retry=None,
        )
        self.generation = blob.generation

    def _write_or_refuse(self, expected_generation: int) -> None:
        try:
            self._write(expected_generation)
        except PreconditionFailed:
            raise StateError(f"{self.where} was taken by another run just now; run again later") from None
