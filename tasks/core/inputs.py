"""HOLD₁: resolve `--input` (a file or a glob) into an ordered list of usable input files."""

from __future__ import annotations

import glob
import hashlib
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from stat import S_ISREG

import google_crc32c

from bqhold.tasks.core.errors import InputError


class InputFormat(str, Enum):
    """The file formats bqhold reads."""

    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"


_SUFFIXES = {
    ".jsonl": InputFormat.JSONL,
    ".ndjson": InputFormat.JSONL,
    ".json": InputFormat.JSONL,
    ".csv": InputFormat.CSV,
    ".parquet": InputFormat.PARQUET,
    ".pq": InputFormat.PARQUET,
}
_SAMPLE_BYTES = 64 * 1024


# Small enough that each chunk is reused from the heap: 4 MiB chunks, freed and allocated again
# every batch, left ~25 MB more resident (measured), enough to be OOM-killed under a tight cgroup.
_CRC_CHUNK = 64 * 1024


@dataclass(frozen=True)
class InputFile:
    """One HOLD₁ file, as seen when the run was planned, and where the run starts reading it.

    A run reads a file from its start (`start_offset` 0) or, when an earlier run of the same
    job delivered the file up to some point and it has grown since, from that point on.
    """

    path: str
    format: InputFormat
    size: int
    mtime_ns: int
    start_offset: int = 0  # bytes (rows for Parquet) delivered by earlier runs
    start_line: int = 0  # lines (rows) before start_offset
    start_crc: int = 0  # crc32c of the bytes before start_offset


def crc32c_of(path: str, length: int | None = None, start: int = 0, crc: int = 0) -> int:
    """The crc32c of `path`'s bytes [start, start + length) (to the end without `length`),
    continuing `crc` — the crc32c of the bytes before `start`. Reads in bounded chunks."""
    remaining = length
    try:
        with open(path, "rb") as handle:
            handle.seek(start)
            while remaining is None or remaining > 0:
                chunk = handle.read(_CRC_CHUNK if remaining is None else min(_CRC_CHUNK, remaining))
                if not chunk:
                    break
                crc = google_crc32c.extend(crc, chunk)
                if remaining is not None:
                    remaining -= len(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read input ({exc.strerror})") from exc
    if remaining:
        raise InputError(f"{path}: ended {remaining:,} bytes early (truncated while being read?)")
    return crc


def detect_format(path: Path) -> InputFormat:
    """The format of `path` from its suffix, or an InputError naming the file."""
    fmt = _SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        known = ", ".join(sorted(_SUFFIXES))
        raise InputError(f"{path}: unknown input format {path.suffix or '(no suffix)'!r}; expected one of {known}")
    return fmt


def _has_glob(spec: str) -> bool:
    return any(char in spec for char in "*?[")


def resolve_inputs(spec: str) -> tuple[InputFile, ...]:
    """The files `spec` names, sorted; InputError if none is usable."""
    if _has_glob(spec):
        matches = sorted(glob.glob(spec, recursive=True))
        files = [Path(match) for match in matches if Path(match).is_file()]
        if not files:
            raise InputError(f"{spec}: no input file matches this pattern")
    else:
        path = Path(spec)
        if not path.exists():
            raise InputError(f"{spec}: input file not found")
        if path.is_dir():
            raise InputError(f"{spec}: is a directory; pass a file or a glob such as '{spec.rstrip('/')}/*.jsonl'")
        files = [path]
    resolved = []
    for path in files:
        fmt = detect_format(path)
        try:
            stat = path.stat()
        except OSError as exc:
            raise InputError(f"{path}: cannot read input ({exc.strerror})") from exc
        if not S_ISREG(stat.st_mode):  # a pipe cannot be read again from a position to resume
            raise InputError(f"{path}: not a regular file (a pipe or device); write the data to a file first")
        resolved.append(InputFile(str(path.resolve()), fmt, stat.st_size, stat.st_mtime_ns))
    nonempty = tuple(f for f in resolved if f.size > 0)
    if not nonempty:
        raise InputError(f"{spec}: input is empty (0 bytes)")
    return nonempty


def fingerprint(files: tuple[InputFile, ...]) -> str:
    """A short digest of the inputs' names, sizes and first and last 64 KiB.

    Cheap at any size (no full read), and it changes when a file is replaced, truncated,
    appended to or edited near either end.
    """
    digest = hashlib.blake2b(digest_size=12)
    for item in files:
        digest.update(f"{item.path}\0{item.size}\0".encode())
        try:
            with open(item.path, "rb") as handle:
                digest.update(handle.read(_SAMPLE_BYTES))
                if item.size > _SAMPLE_BYTES:
                    handle.seek(max(_SAMPLE_BYTES, item.size - _SAMPLE_BYTES))
                    digest.update(handle.read(_SAMPLE_BYTES))
        except OSError as exc:
            raise InputError(f"{item.path}: cannot read input ({exc.strerror})") from exc
    return digest.hexdigest()
