"""The checkpoint: where a run is, in under 1 KB, written atomically after every batch.

It holds positions and counters only — never records, keys or file lists — so its size does
not depend on the input. HOLD₂'s ledger is the authority: when the two disagree (a crash
between the ledger commit and the checkpoint write) the checkpoint is rebuilt from it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, astuple, dataclass, field, replace
from enum import Enum
from pathlib import Path

from bqhold.tasks.core.atomic import atomic_write_bytes
from bqhold.tasks.core.errors import StateError
from bqhold.tasks.core.inputs import InputFile, InputFormat
from bqhold.tasks.core.records import Position

MAX_BYTES = 1024
VERSION = 1


class Phase(str, Enum):
    """Where a run is in its life."""

    STAGING = "staging"  # batches are going from HOLD₁ to HOLD₂
    LOADING = "loading"  # HOLD₂ is complete; the warehouse is being loaded and verified
    DELIVERED = "delivered"  # the warehouse's counts equal the ledger's
    UNVERIFIED = "unverified"  # loaded, but the counts differ: HOLD₂ kept, exit 3
    CLEANED = "cleaned"  # delivered, verified again, then its staged data removed on request
    ABANDONED = "abandoned"  # given up on request: never delivered, its keys no longer count

    @property
    def finished(self) -> bool:
        """True once the warehouse holds the run and nothing is left to stage or load."""
        return self in (Phase.DELIVERED, Phase.CLEANED)

    @property
    def resumable(self) -> bool:
        """True while re-running the job continues this run."""
        return self in (Phase.STAGING, Phase.LOADING, Phase.UNVERIFIED)


@dataclass(frozen=True)
class Counters:
    """Cumulative record counts of a run."""

    rows_read: int = 0
    rows_written: int = 0
    rows_quarantined: int = 0
    duplicates_skipped: int = 0

    def __add__(self, other: Counters) -> Counters:
        return Counters(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class Checkpoint:
    """A run's progress: the next batch to stage and where in HOLD₁ it starts."""

    run_id: str
    fingerprint: str
    next_batch: int = 0
    position: Position = field(default_factory=Position)
    counters: Counters = Counters()
    batch_size: int = 0
    phase: Phase = Phase.STAGING
    input_done: bool = False

    def advanced(self, position: Position, counters: Counters, input_done: bool, batch_size: int) -> Checkpoint:
        """The checkpoint after one more committed batch."""
        return replace(
            self,
            next_batch=self.next_batch + 1,
            position=position,
            counters=self.counters + counters,
            input_done=input_done,
            batch_size=batch_size,
        )


def encode(checkpoint: Checkpoint) -> bytes:
    """The checkpoint as compact JSON; refuses to exceed MAX_BYTES."""
    body = asdict(checkpoint)
    body["phase"] = checkpoint.phase.value
    body["v"] = VERSION
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    if len(data) >= MAX_BYTES:
        raise StateError(f"checkpoint of run {checkpoint.run_id} would be {len(data)} bytes (limit {MAX_BYTES})")
    return data


def _exact(value: object, kind: type) -> object:
    if type(value) is not kind:
        raise ValueError(f"{value!r} is not {kind.__name__}")
    return value


def decode(data: bytes, source: str = "checkpoint") -> Checkpoint:
    """Parse and validate a checkpoint; StateError if it is damaged or from another version."""
    try:
        body = json.loads(data)
        if body.pop("v") != VERSION:
            raise ValueError("unknown version")
        return Checkpoint(
            run_id=_exact(body["run_id"], str),
            fingerprint=_exact(body["fingerprint"], str),
            next_batch=_exact(body["next_batch"], int),
            position=Position(**{k: _exact(v, int) for k, v in body["position"].items()}),
            counters=Counters(**{k: _exact(v, int) for k, v in body["counters"].items()}),
            batch_size=_exact(body["batch_size"], int),
            phase=Phase(body["phase"]),
            input_done=_exact(body["input_done"], bool),
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{source} is damaged ({exc}); HOLD₂'s ledger will be used instead") from exc


def save(path: Path, checkpoint: Checkpoint) -> int:
    """Write the checkpoint atomically; return its size in bytes."""
    return atomic_write_bytes(path, encode(checkpoint))


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at `path`, or None if there is none."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    return decode(data, str(path))


def progress_percent(checkpoint: Checkpoint, inputs: tuple[InputFile, ...]) -> float:
    """How far through HOLD₁ a checkpoint is, by bytes (a Parquet file counts when done)."""
    if checkpoint.input_done or not inputs:
        return 100.0
    total = sum(item.size for item in inputs)
    index = checkpoint.position.file_index
    done = sum(item.size for item in inputs[:index])
    current = inputs[index] if index < len(inputs) else None
    if current is not None and current.format is not InputFormat.PARQUET:
        done += min(checkpoint.position.offset, current.size)
    return round(100.0 * done / total, 1) if total else 100.0
