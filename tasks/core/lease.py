"""One writer at a time on a durable HOLD₂: what a lease says and when it has run out.

A lease is one object under the hold's prefix, created only if absent, renewed by the run that
holds it and taken over only by naming the generation found (tasks/warehouses/gcs_lease.py): GCS
makes each of those one atomic step. This module is the pure part: who holds it, whether it has
expired (from the object's update time, which the bucket stamps: the holder's clock plays no
part), and what a refused run is told.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta


@dataclass(frozen=True)
class LeaseHolder:
    """The run that holds a lease, and where it runs (`token` tells this process's lease from
    any other's, whatever they are called)."""

    run_id: str
    host: str
    pid: int
    token: str = field(default_factory=lambda: secrets.token_hex(8))

    def to_bytes(self) -> bytes:
        return json.dumps(asdict(self), sort_keys=True).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> LeaseHolder:
        """The holder a lease object names; an unreadable one names nobody in particular."""
        try:
            fields = json.loads(data)
            return cls(str(fields["run_id"]), str(fields["host"]), int(fields["pid"]), str(fields.get("token", "")))
        except (ValueError, KeyError, TypeError):
            return cls("(unknown)", "(unknown)", 0, "")


def expired(renewed_at: datetime, ttl_s: float, now: datetime) -> bool:
    """Whether a lease last renewed at `renewed_at` has run out at `now`."""
    return now - renewed_at > timedelta(seconds=ttl_s)


def in_use_message(where: str, holder: LeaseHolder, renewed_at: datetime, ttl_s: float, now: datetime) -> str:
    """One line for a run refused because `holder` holds the lease on `where`."""
    age = max((now - renewed_at).total_seconds(), 0)
    left = max(ttl_s - age, 0)
    return (
        f"{where} is in use by run {holder.run_id} (host {holder.host}, pid {holder.pid}), whose lease was "
        f"renewed {age:.0f} s ago; if that run is gone, its lease expires in {left:.0f} s: run again then"
    )
