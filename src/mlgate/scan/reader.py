"""A forward reader over a binary stream that never holds more than one chunk.

Large arguments are skipped by seeking when the stream allows it, so tensor bytes inside a
pickle are never read. Offsets are absolute positions in the stream.
"""

from __future__ import annotations

import io
from typing import BinaryIO

CHUNK = 1 << 20


class TruncatedError(Exception):
    """The stream ended before the requested bytes."""


class ByteReader:
    """Buffered forward reader with cheap single-byte access for the pickle VM."""

    __slots__ = ("_end", "_file", "_seekable", "base", "buf", "pos")

    def __init__(self, file: BinaryIO, start: int = 0, size: int | None = None) -> None:
        self._file = file
        self._seekable = _is_seekable(file)
        if self._seekable:
            file.seek(start)
            if size is None:
                size = file.seek(0, io.SEEK_END)
                file.seek(start)
        self._end = size  # absolute end offset when known
        self.base = start
        self.buf = b""
        self.pos = 0

    def tell(self) -> int:
        """Absolute offset of the next byte."""
        return self.base + self.pos

    @property
    def size(self) -> int | None:
        """Absolute size of the stream, when known without reading it."""
        return self._end

    def remaining_known(self) -> int | None:
        """Bytes left, when the stream's size is known."""
        return None if self._end is None else self._end - self.tell()

    def _fill(self, want: int) -> None:
        """Make at least ``want`` unread bytes available in ``buf`` if the stream has them."""
        rest = self.buf[self.pos :]
        self.base += self.pos
        self.pos = 0
        need = want - len(rest)
        chunks = [rest]
        while need > 0:
            data = self._file.read(max(need, CHUNK))
            if not data:
                break
            chunks.append(data)
            need -= len(data)
        self.buf = b"".join(chunks)

    def read_byte(self) -> int:
        """Next byte, or -1 at the end of the stream."""
        if self.pos >= len(self.buf):
            self._fill(1)
            if not self.buf:
                return -1
        b = self.buf[self.pos]
        self.pos += 1
        return b

    def at_eof(self) -> bool:
        """True when no byte is left."""
        if self.pos < len(self.buf):
            return False
        self._fill(1)
        return not self.buf

    def read(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or :class:`TruncatedError`."""
        pos = self.pos
        if pos + n <= len(self.buf):
            self.pos = pos + n
            return self.buf[pos : pos + n]
        left = self.remaining_known()
        if left is not None and n > left:
            raise TruncatedError(f"{n} bytes requested, {left} available")
        self._fill(n)
        if len(self.buf) < n:
            raise TruncatedError(f"{n} bytes requested, {len(self.buf)} available")
        self.pos = n
        return self.buf[:n]

    def peek(self, n: int) -> bytes:
        """Up to ``n`` next bytes without consuming them."""
        if self.pos + n > len(self.buf):
            self._fill(n)
        return self.buf[self.pos : self.pos + n]

    def readline(self, limit: int) -> bytes:
        """Bytes up to and including the next newline (at most ``limit`` bytes)."""
        nl = self.buf.find(b"\n", self.pos)
        while nl < 0:
            have = len(self.buf) - self.pos
            if have >= limit:
                raise TruncatedError(f"line longer than {limit} bytes")
            self._fill(have + 65536)
            if len(self.buf) - self.pos <= have:
                raise TruncatedError("stream ended inside a text line")
            nl = self.buf.find(b"\n", self.pos)
        line = self.buf[self.pos : nl + 1]
        self.pos = nl + 1
        return line

    def skip(self, n: int) -> None:
        """Advance ``n`` bytes without keeping them (seeks when possible)."""
        avail = len(self.buf) - self.pos
        if n <= avail:
            self.pos += n
            return
        left = self.remaining_known()
        if left is not None and n > left:
            raise TruncatedError(f"{n} bytes to skip, {left} available")
        target = self.tell() + n
        if self._seekable:
            self._file.seek(target)
        else:
            todo = n - avail
            while todo > 0:
                data = self._file.read(min(todo, CHUNK))
                if not data:
                    raise TruncatedError("stream ended inside a skipped argument")
                todo -= len(data)
        self.base = target
        self.buf = b""
        self.pos = 0


def _is_seekable(file: BinaryIO) -> bool:
    try:
        return bool(file.seekable())
    except (AttributeError, OSError, ValueError):
        return False
