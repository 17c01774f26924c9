"""`python flows/run.py replay PATH`: turn a (fixed) quarantine file into an ordinary input of the
job that quarantined its records.

The records are written, in their own format, to `<hold>/replays/<name>`, a name that follows
from the quarantine file's path; the main job then runs on that file with the options of the run
that produced it (pipeline, table, key, warehouse, hold dir). Replaying the same file again is a
re-run of a delivered input, which loads nothing; a replayed file that changed since is refused,
as its earlier records would load twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from bqhold.tasks.core.atomic import atomic_write
from bqhold.tasks.core.errors import ConfigError, InputError
from bqhold.tasks.core.layout import HoldLayout
from bqhold.tasks.core.quarantine import REPLAY_SUFFIXES, read_quarantine, replay_plan, write_replay_input
from bqhold.tasks.core.runs import RunRecord
from bqhold.tasks.storage.hold_store import HoldStore

_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Replay:
    """The input a replay delivers, and the run whose options it delivers it with."""

    input: Path
    run: RunRecord


def hold_dir_of(path: Path) -> Path | None:
    """The hold directory a quarantine file lies in (`<hold>/runs/<run>/quarantine/<file>`), if any."""
    parents = path.resolve().parents
    if len(parents) > 3 and parents[0].name == "quarantine" and parents[2].name == "runs":
        hold = parents[3]
        if HoldLayout(hold).database.exists():
            return hold
    return None


class _Digest:
    """A write-only file that only hashes what is written to it."""

    def __init__(self) -> None:
        self.hash = hashlib.blake2b(digest_size=16)

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        return len(data)


def _digest(write: Callable[[BinaryIO], None]) -> bytes:
    sink = _Digest()
    write(sink)  # type: ignore[arg-type]
    return sink.hash.digest()


def _file_digest(path: Path) -> bytes | None:
    if not path.exists():
        return None
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as handle:
        while block := handle.read(_READ_CHUNK):
            digest.update(block)
    return digest.digest()


def prepare_replay(path: Path, hold: Path) -> Replay:
    """Write the replay input of quarantine file `path` into HOLD₂ at `hold` (unless an identical
    one is there) and name the run whose options deliver it; InputError/ConfigError if unusable."""
    layout = HoldLayout(hold.resolve())
    if not layout.database.exists():
        raise ConfigError(f"{hold}: holds no HOLD₂; pass the --hold-dir of the run that quarantined {path}")
    records = read_quarantine(path)
    plan = replay_plan(path, records)
    with HoldStore(layout) as store:
        run = store.get_run(plan.run_id)
        runs = store.runs()
    if run is None:
        raise ConfigError(f"{path}: run {plan.run_id} is not in HOLD₂ at {layout.root}; pass its --hold-dir")
    tag = hashlib.blake2b(str(path.resolve()).encode(), digest_size=4).hexdigest()
    target = layout.root / "replays" / f"{path.stem}-{tag}{REPLAY_SUFFIXES[plan.format]}"

    def write(out: BinaryIO) -> None:
        write_replay_input(out, plan, records)

    before = _file_digest(target)
    if before == _digest(write):
        return Replay(target, run)  # replayed before as it is: the job finds it delivered
    earlier = [known.run_id for known in runs if known.job.input_spec == str(target)]
    if before is not None and earlier:
        raise InputError(
            f"{path} was replayed before (run {', '.join(earlier)}) and has changed since: its records "
            "would load again. Replay the quarantine of that run for the records still bad, or put records "
            "never replayed in a file of another name"
        )
    atomic_write(target, write)
    return Replay(target, run)
