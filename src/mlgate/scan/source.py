"""Where an artifact's bytes come from: a file, a slice of another artifact, or memory.

Every source opens a fresh binary stream, so a handler can read an artifact twice (two
readings of a polyglot) and a nested payload can be re-read from its parent on demand
without ever holding the parent in memory.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import BinaryIO

from mlgate.findings import Location


@dataclass(frozen=True)
class Source:
    """An artifact to scan.

    ``opener`` returns a new binary stream positioned at the artifact's first byte.
    ``folder`` is the directory a loader would resolve relative paths against (for
    multi-stage payloads), when the artifact lives on disk.
    """

    location: Location
    opener: Callable[[], BinaryIO]
    size: int | None
    name: str
    folder: Path | None = None
    seekable: bool = True
    forced_format: str | None = None  # the loader's reading, when it is known (pickle.loads)
    # Resolves a path named inside this artifact to another member of the same archive.
    siblings: Callable[[str], Source | None] | None = None
    # (file, offset): these bytes lie in ``file`` from ``offset`` on, when they are stored
    # as they are (a file, a stored archive member); readers in other processes use it.
    on_disk: tuple[Path, int] | None = None

    def open(self) -> BinaryIO:
        return self.opener()

    def with_format(self, fmt: str) -> Source:
        """The same bytes, read as ``fmt`` whatever they look like."""
        return replace(self, forced_format=fmt)

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer if the artifact is shorter)."""
        with self.open() as f:
            return f.read(n)

    def tail(self, n: int) -> bytes:
        """The last ``n`` bytes, for formats indexed from the end (zip)."""
        if not self.seekable or self.size is None:
            return b""
        with self.open() as f:
            f.seek(max(0, self.size - n))
            return f.read(n)

    def child(
        self, member: str, opener: Callable[[], BinaryIO], size: int | None, seekable: bool
    ) -> Source:
        """A member nested in this artifact (archive entry, embedded payload)."""
        loc = replace(self.location, members=(*self.location.members, member), offset=None)
        return Source(loc, opener, size, member.rsplit("/", 1)[-1], self.folder, seekable)

    def slice(self, member: str, offset: int, length: int) -> Source:
        """A byte range of this artifact as an artifact of its own."""

        def opener() -> BinaryIO:
            return io.BufferedReader(_Window(self.open(), offset, length, self.seekable), 1 << 16)

        child = self.child(member, opener, length, self.seekable)
        if self.on_disk is None:
            return child
        return replace(child, on_disk=(self.on_disk[0], self.on_disk[1] + offset))


# Members up to this size are held in memory when they must be made seekable.
_SPOOL_IN_MEMORY = 1 << 20


@contextmanager
def seekable(source: Source) -> Iterator[Source]:
    """``source`` itself if it can seek, else a copy in memory or in an anonymous temporary file.

    Formats indexed from the end (ZIP) or read member by member (tar) need random access;
    the decompression limits of the stream being copied bound the spool's size. No folder
    is created per member: creating and removing one cost milliseconds, which a tar of
    100,000 empty members turned into minutes.
    """
    if source.seekable and source.size is not None:
        yield source
        return
    with source.open() as src:
        head = _read_up_to(src, _SPOOL_IN_MEMORY + 1)
        if len(head) <= _SPOOL_IN_MEMORY:
            yield replace(
                source, opener=lambda: io.BytesIO(head), size=len(head), seekable=True, on_disk=None
            )
            return
        with tempfile.TemporaryFile(prefix="mlgate-") as spool:
            spool.write(head)
            shutil.copyfileobj(src, spool, 1 << 20)
            yield replace(
                source, opener=_reopener(spool), size=spool.tell(), seekable=True, on_disk=None
            )


def _read_up_to(stream: BinaryIO, n: int) -> bytes:
    """``n`` bytes, fewer only at the end of ``stream`` (a raw stream may return short reads)."""
    parts: list[bytes] = []
    while n > 0 and (data := stream.read(n)):
        parts.append(data)
        n -= len(data)
    return b"".join(parts)


def spooled(parent: Source, member: str, spool: BinaryIO) -> Source:
    """Member ``member`` of ``parent``, whose bytes were written to the open file ``spool``."""
    return parent.child(member, _reopener(spool), spool.seek(0, os.SEEK_END), True)


def _reopener(spool: BinaryIO) -> Callable[[], BinaryIO]:
    """Opens independent readers of ``spool`` (as reopening a named file would)."""
    spool.flush()
    fd, size = spool.fileno(), spool.seek(0, os.SEEK_END)
    return lambda: io.BufferedReader(_PositionalReader(fd, size), 1 << 16)


class _PositionalReader(io.RawIOBase):
    """An independent reader of an open file (os.pread): every opener call gets its own
    position, as reopening a named file would, without the file needing a name."""

    def __init__(self, fd: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + pos)
        return self._pos

    def fileno(self) -> int:
        # Lets a reader map the file (protowire.mapped) when it is exactly this artifact.
        return self._fd

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = os.pread(self._fd, len(b), self._pos)
        b[: len(data)] = data
        self._pos += len(data)
        return len(data)


def file_source(path: Path, display: str | None = None) -> Source:
    """An artifact stored in a regular file, reopened by name at each read (a file another
    artifact names, e.g. a chained ``torch.load``); a file scanned for itself is pinned."""
    size = path.stat().st_size
    loc = Location(path=display or str(path))
    return Source(loc, lambda: _open_regular(path), size, path.name, path.parent, on_disk=(path, 0))


@contextmanager
def pinned_file(path: Path, display: str | None = None) -> Iterator[Source]:
    """An artifact stored in a regular file, opened once: every reading of it (the sniff,
    each handler, both readings of a polyglot, a reader process through ``/proc``) sees the
    same file, so one swapped in by name during the scan is never what gets analysed
    (time-of-check gap between the reads)."""
    f = _open_regular(path)
    try:
        fd = f.fileno()
        size = os.fstat(fd).st_size
        yield Source(
            Location(path=display or str(path)),
            lambda: io.BufferedReader(_PositionalReader(fd, size), 1 << 16),
            size,
            path.name,
            path.parent,
            # Reader processes open the descriptor's file, not whatever bears the name now.
            on_disk=(Path(f"/proc/{os.getpid()}/fd/{fd}"), 0),
        )
    finally:
        f.close()


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading only if it is (still) a regular file. A FIFO swapped in after
    the scan looked at the entry would block ``open`` forever (time-of-check gap): O_NONBLOCK
    makes that open return at once, and the fstat on the open descriptor refuses it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file (changed during the scan)", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def bytes_source(parent: Source, member: str, data: bytes) -> Source:
    """An in-memory payload found inside ``parent``."""
    return parent.child(member, lambda: io.BytesIO(data), len(data), True)


class _Window(io.RawIOBase):
    """A read-only view of ``length`` bytes of ``inner`` starting at ``start``."""

    def __init__(self, inner: BinaryIO, start: int, length: int, seekable: bool) -> None:
        super().__init__()
        self._inner = inner
        self._start = start
        self._length = length
        self._pos = 0
        self._can_seek = seekable
        if seekable:
            inner.seek(start)
        else:
            _discard(inner, start)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return self._can_seek

    def tell(self) -> int:
        return self._pos

    def seek(self, pos: int, whence: int = os.SEEK_SET) -> int:
        if not self._can_seek:
            raise io.UnsupportedOperation("seek")
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + pos))
        self._inner.seek(self._start + self._pos)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        left = self._length - self._pos
        if n is None or n < 0 or n > left:
            n = left
        data = self._inner.read(n)
        self._pos += len(data)
        return data

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._inner.close()
        super().close()


def _discard(stream: BinaryIO, n: int) -> None:
    while n > 0:
        data = stream.read(min(n, 1 << 20))
        if not data:
            return
        n -= len(data)
