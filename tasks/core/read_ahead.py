"""Read ahead: the next batch is read in a thread while this one is written.

The libraries use both cores only part of the time: the read (block read, guards, pyarrow's
parse) and the write (Parquet, DuckDB's commit, fsync) leave gaps the other fills; starting the
read after the transform keeps the transform's peak and the read's apart. Only reading
runs ahead, nothing is written before its turn, so a crash or a kill leaves what it left before.
A batch takes the read made ahead only if it asks for exactly that read (same file, position,
size, text columns and parse); otherwise the read is dropped and the batch reads for itself.
An error of a read made ahead is the batch's that takes it, raised when it does (an out of
memory is then retried smaller, as any); a dropped read's error is nobody's.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from bqhold.tasks.core.inputs import InputFile
from bqhold.tasks.core.readers import read_batch
from bqhold.tasks.core.records import ParseChoice, Position, RawBatch


@dataclass(frozen=True)
class ReadRequest:
    """One batch's read: everything read_batch is given."""

    item: InputFile
    position: Position
    size: int
    max_record_bytes: int
    text: frozenset[str]
    parse: ParseChoice
    null_markers: frozenset[str] = frozenset()

    def read(self) -> RawBatch:
        return read_batch(
            self.item, self.position, self.size, self.max_record_bytes, self.text, self.parse, self.null_markers
        )


class ReadAhead:
    """At most one read running ahead (a plain object: it holds a thread)."""

    def __init__(self) -> None:
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[ReadRequest, Future[RawBatch]] | None = None

    def read(self, request: ReadRequest) -> RawBatch:
        """The batch `request` reads: the read made ahead if it is this one, else read now."""
        pending, self._pending = self._pending, None
        if pending is not None:
            ahead, future = pending
            if ahead == request:
                return future.result()
            _settle(future)
        return request.read()

    def start(self, request: ReadRequest) -> None:
        """Begin reading `request` in the background (dropping any other read made ahead)."""
        self.drop()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="bqhold-read-ahead")
        self._pending = (request, self._pool.submit(request.read))

    def drop(self) -> None:
        """Forget the read made ahead, once it has finished (its memory goes with it)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            _settle(pending[1])

    def close(self) -> None:
        """Drop the read made ahead and end the thread (a later start() makes a new one)."""
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None


def _settle(future: Future[RawBatch]) -> None:
    """Wait for a read nobody will take; its result or error is dropped."""
    if not future.cancel():
        future.exception()
