"""HOLD₁ in Cloud Storage: `--input gs://BUCKET/exports/2026-11-29/*.jsonl`.

The pattern is matched against object names (`*`, `?` and `[...]` as in a shell, `*` not crossing
`/`) under the longest prefix without a wildcard, with one listing. Each object is an input whose
version is its generation (recorded as its mtime): a replaced object is another version, seen
like a changed local file. Its bytes reach the spool copy (tasks/core/spool.py) in ranged reads
of `CHUNK_BYTES`, each naming the generation listed, each retried by the request layer: memory
stays at one chunk, and an object replaced meanwhile stops the run in one line.
"""

from __future__ import annotations

import io
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO

from google.api_core.exceptions import NotFound, PreconditionFailed

from bqhold.tasks.core.errors import InputError
from bqhold.tasks.core.inputs import InputFile, detect_format, spooled
from bqhold.tasks.core.retry import RequestRetries
from bqhold.tasks.core.spool import register_opener
from bqhold.tasks.core.staging_bucket import gs_uri, parse_gs_url
from bqhold.tasks.warehouses.google_api import STORAGE_HINTS, call_with_retries, make_storage_client

if TYPE_CHECKING:
    from google.cloud import storage
    from prefect_gcp import GcpCredentials

SCHEME = "gs://"
CHUNK_BYTES = 8 << 20
_WILDCARD = re.compile(r"[*?\[]")


def _pattern(glob: str) -> re.Pattern[str]:
    """A shell pattern over object names as a regex: `*` and `?` do not cross `/`, `**` does."""
    out, i = [], 0
    while i < len(glob):
        if glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif glob[i] == "*":
            out.append("[^/]*")
            i += 1
        elif glob[i] == "?":
            out.append("[^/]")
            i += 1
        elif glob[i] == "[" and (end := glob.find("]", i + 1)) > i:
            body = glob[i + 1 : end]
            out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
            i = end + 1
        else:
            out.append(re.escape(glob[i]))
            i += 1
    return re.compile("".join(out))


class GcsSource:
    """Objects in Cloud Storage as HOLD₁ inputs, reached with one client."""

    def __init__(
        self, client: storage.Client, retries: RequestRetries, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client, self.policy, self.timeout_s, self.sleep = client, retries.policy, retries.request_timeout_s, sleep

    def _call(self, doing: str, call: Callable[[], object]) -> object:
        return call_with_retries(call, doing, self.policy, self.sleep, "Cloud Storage", STORAGE_HINTS)

    def resolve(self, spec: str, spool_dir: Path) -> tuple[InputFile, ...]:
        """The objects `gs://BUCKET/PATTERN` matches (a folder, `.../`: its objects), sorted by name,
        as spooled inputs (empty ones left out)."""
        spec = spec + "*" if spec.endswith("/") else spec
        parsed = parse_gs_url(spec, "--input")
        name_glob = spec.removeprefix(f"{SCHEME}{parsed.bucket}/")
        bucket = self.client.bucket(parsed.bucket)
        wildcard = _WILDCARD.search(name_glob)
        prefix = name_glob[: wildcard.start()] if wildcard else name_glob
        pattern = _pattern(name_glob)
        blobs = self._call(
            f"listing {gs_uri(bucket.name, prefix)}",
            lambda: [
                (blob.name, blob.size, blob.generation)
                for blob in bucket.list_blobs(prefix=prefix, timeout=self.timeout_s, retry=None)
            ],
        )
        found = [(name, size, gen) for name, size, gen in blobs if pattern.fullmatch(name) and not name.endswith("/")]
        if not found:
            raise InputError(f"{spec}: no object matches" + (" this pattern" if wildcard else ""))
        inputs = []
        for name, size, generation in sorted(found):
            fmt = detect_format(PurePosixPath(name))
            if size:
                inputs.append(spooled(gs_uri(bucket.name, name), fmt, size, generation, spool_dir))
        if not inputs:
            raise InputError(f"{spec}: input is empty (0 bytes)")
        return tuple(inputs)

    @contextmanager
    def open(self, item: InputFile) -> Iterator[BinaryIO]:
        """The object's bytes at the generation listed, read in ranges of CHUNK_BYTES."""
        yield _Ranges(self, item)


class _Ranges(io.RawIOBase):
    """An object version read forward in ranged requests of CHUNK_BYTES, each retried on its own."""

    def __init__(self, source: GcsSource, item: InputFile) -> None:
        super().__init__()
        bucket, _, name = item.name.removeprefix(SCHEME).partition("/")
        self.source, self.item, self.position = source, item, 0
        self.blob = source.client.bucket(bucket).blob(name)
        self.chunk, self.taken = memoryview(b""), 0  # the last range read, and how much of it was handed out

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:
        if self.taken == len(self.chunk) and self.position < self.item.size:
            end = min(self.position + CHUNK_BYTES, self.item.size) - 1
            start = self.position
            self.chunk = memoryview(self.source._call(f"reading {self.item.name}", lambda: self._range(start, end)))
            self.taken = 0
            self.position += len(self.chunk)
        count = min(len(buffer), len(self.chunk) - self.taken)
        buffer[:count] = self.chunk[self.taken : self.taken + count]
        self.taken += count
        return count

    def _range(self, start: int, end: int) -> bytes:
        try:
            return self.blob.download_as_bytes(
                start=start,
                end=end,
                if_generation_match=self.item.mtime_ns,
                checksum=None,
                timeout=self.source.timeout_s,
                retry=None,
            )
        except (PreconditionFailed, NotFound):
            raise InputError(
                f"{self.item.name} was replaced or deleted while it was read (generation {self.item.mtime_ns} is "
                "gone); run again: the run resumes if the part it staged is still the same, else it says so"
            ) from None


def use_gcs_inputs(credentials: GcpCredentials | None, retries: RequestRetries) -> GcsSource:
    """Read `gs://` inputs with these credentials in this process from now on (tasks/core/spool.py)."""
    source = GcsSource(make_storage_client(None, credentials), retries)
    register_opener(SCHEME, source.open)
    return source
