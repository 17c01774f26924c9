"""Several segment files read as one seekable stream, so one upload carries a whole load group.

Memory stays at one read buffer whatever the group's size, and `seek(0)` lets an upload be
sent again from the start after a transient failure.
"""

from __future__ import annotations

import bisect
import io
import itertools
import os
from pathlib import Path


class ConcatenatedFiles(io.RawIOBase):
    """Read-only, seekable concatenation of files (which must not change while open)."""

    def __init__(self, paths: list[Path]) -> None:
        super().__init__()
        sized = [(Path(p), os.path.getsize(p)) for p in paths]
        self._paths = [path for path, size in sized if size]  # empty files add nothing
        self._sizes = [size for _, size in sized if size]
        self._starts = list(itertools.accumulate(self._sizes, initial=0))[:-1]
        self.size = sum(self._sizes)
        self._position = 0
        self._index = -1
        self._handle: io.BufferedReader | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self.size}[whence]
        self._position = max(0, min(self.size, base + offset))
        return self._position

    def readinto(self, buffer: bytearray | memoryview) -> int:
        view = memoryview(buffer).cast("B")
        done = 0
        while done < len(view) and self._position < self.size:
            index = bisect.bisect_right(self._starts, self._position) - 1
            if index != self._index:
                if self._handle is not None:
                    self._handle.close()
                self._handle, self._index = open(self._paths[index], "rb"), index  # noqa: SIM115 (closed in close())
            self._handle.seek(self._position - self._starts[index])
            left_in_file = self._starts[index] + self._sizes[index] - self._position
            count = self._handle.readinto(view[done : done + min(len(view) - done, left_in_file)])
            if not count:
                raise OSError(f"{self._paths[index]} shrank while being uploaded")
            done += count
            self._position += count
        return done

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        super().close()
