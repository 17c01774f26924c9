"""HOLD₁: resolve `--input` (a file or a glob) into an ordered list of usable input files.

A compressed file (`.jsonl.gz`, `.csv.gz`, `.jsonl.zst`, ...) and an object in Cloud Storage
(`gs://`, tasks/warehouses/gcs_source.py) are read through a local **spool** copy, plain and
seekable like any input file (tasks/core/spool.py): `InputFile.origin` names what the user gave,
`path` the spool file, offsets and lines count in it, and `size`/`mtime_ns` are the origin's (an
object's generation stands for its mtime): what tells a later run whether it was replaced."""

from __future__ import annotations

import glob
import hashlib
import os
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePath
from stat import S_ISREG

import google_crc32c

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.table_source import SCHEME as TABLE_SCHEME
from bqhold.tasks.core.table_source import parse_table_spec, table_digest, table_end


class InputFormat(str, Enum):
    """The file formats bqhold reads."""

    JSONL = "jsonl"
    CSV = "csv"
    PARQUET = "parquet"
    DUCKDB_TABLE = "duckdb_table"  # a table of a DuckDB file, read by rowid (tasks/core/table_source.py)

    @property
    def by_rows(self) -> bool:
        """Whether positions count rows (Parquet, a table), not bytes."""
        return self in (InputFormat.PARQUET, InputFormat.DUCKDB_TABLE)


_SUFFIXES = {
    ".jsonl": InputFormat.JSONL,
    ".ndjson": InputFormat.JSONL,
    ".json": InputFormat.JSONL,
    ".csv": InputFormat.CSV,
    ".parquet": InputFormat.PARQUET,
    ".pq": InputFormat.PARQUET,
}
# Compressed inputs: the suffix after the format's, and pyarrow's name for the codec.
COMPRESSIONS = {".gz": "gzip", ".zst": "zstd"}
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
    origin: str | None = None  # a compressed file or gs:// object, read through the spool file `path`

    @property
    def name(self) -> str:
        """The input as the user named it (the origin of a spooled one)."""
        return self.origin or self.path

    @property
    def compression(self) -> str | None:
        """The codec of a compressed input (by its origin's suffix), else None."""
        return COMPRESSIONS.get(PurePath(self.origin).suffix.lower()) if self.origin else None


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


def detect_format(path: PurePath) -> InputFormat:
    """The format of `path` from its suffix (before a compression suffix), or an InputError naming the file."""
    plain = path.with_suffix("") if path.suffix.lower() in COMPRESSIONS else path
    fmt = _SUFFIXES.get(plain.suffix.lower())
    if fmt is None or (fmt is InputFormat.PARQUET and plain is not path):
        known = ", ".join(sorted(_SUFFIXES))
        compressed = ", ".join(f"{s}{c}" for s in (".jsonl", ".csv") for c in COMPRESSIONS)
        raise InputError(
            f"{path}: unknown input format {''.join(path.suffixes) or '(no suffix)'!r}; expected one of {known}"
            f" (or compressed: {compressed}, ...)"
        )
    return fmt


def spool_path(spool_dir: Path, origin: str, size: int, mtime_ns: int) -> Path:
    """Where the plain copy of `origin` (as of this size and mtime/generation) is read from: a
    name of its own per version, so a replaced origin never reads an old copy."""
    tag = hashlib.blake2b(f"{origin}\0{size}\0{mtime_ns}".encode(), digest_size=8).hexdigest()
    plain = PurePath(origin).name
    if PurePath(plain).suffix.lower() in COMPRESSIONS:
        plain = PurePath(plain).stem
    return spool_dir / f"{tag}-{plain}"


def spooled(origin: str, fmt: InputFormat, size: int, mtime_ns: int, spool_dir: Path) -> InputFile:
    """The InputFile of `origin`, read through its spool copy in `spool_dir`."""
    return InputFile(str(spool_path(spool_dir, origin, size, mtime_ns)), fmt, size, mtime_ns, origin=origin)


def _has_glob(spec: str) -> bool:
    return any(char in spec for char in "*?[")


def default_spool_dir() -> Path:
    """Where spool copies go when no hold dir says (a check before a run)."""
    import tempfile

    return Path(tempfile.gettempdir()) / "bqhold-spool"


def resolve_inputs(spec: str, spool_dir: Path | None = None) -> tuple[InputFile, ...]:
    """The local files `spec` names, sorted; InputError if none is usable. Compressed ones are
    read through a spool copy in `spool_dir`; `duckdb:///file.duckdb?table=NAME` is a table."""
    if spec.startswith(TABLE_SCHEME):
        return (table_input(spec),)
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
        if path.suffix.lower() in COMPRESSIONS:
            origin = str(path.resolve())
            spool = spool_dir or default_spool_dir()
            resolved.append(spooled(origin, fmt, stat.st_size, stat.st_mtime_ns, spool))
        else:
            resolved.append(InputFile(str(path.resolve()), fmt, stat.st_size, stat.st_mtime_ns))
    nonempty = tuple(f for f in resolved if f.size > 0)
    if not nonempty:
        raise InputError(f"{spec}: input is empty (0 bytes)")
    return nonempty


def table_input(spec: str) -> InputFile:
    """The InputFile of a DuckDB table: its size is where its rows end (one past the last rowid)."""
    source = parse_table_spec(spec)
    end = table_end(source.spec)
    if not end:
        raise InputError(f"{spec}: input is empty (no rows)")
    return InputFile(source.spec, InputFormat.DUCKDB_TABLE, end, os.stat(source.path).st_mtime_ns)


def digest_upto(item: InputFile, end: int, start: int = 0, crc: int = 0) -> int:
    """The digest of `item` up to `end` (continuing `crc` from `start`): a text file's crc32c, a
    table's row hash sum."""
    if item.format is InputFormat.DUCKDB_TABLE:
        return table_digest(item.path, end, start, crc)
    return crc32c_of(item.path, end - start, start, crc)


def fingerprint(files: tuple[InputFile, ...]) -> str:
    """A short digest of the inputs' names, sizes and first and last 64 KiB.

    Cheap at any size (no full read), and it changes when a file is replaced, truncated,
    appended to or edited near either end.
    """
    digest = hashlib.blake2b(digest_size=12)
    for item in files:
        if item.origin or item.format is InputFormat.DUCKDB_TABLE:  # a version: its size and mtime, read nothing
            digest.update(f"{item.name}\0{item.size}\0{item.mtime_ns}\0".encode())
            continue
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
