"""Tensor views checked against their storage, and their bytes streamed in row-major order.

A view (offset, shape, strides) read from an untrusted pickle may point anywhere: it is
checked against the storage's real size before a byte is read. Contiguous views are copied
by the kernel (``copy_file_range``) in bounded steps; other views are gathered from a
memory map, one innermost row at a time, so memory stays bounded by the output chunk size.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from types import TracebackType
from typing import Literal

from mlgate.convert.errors import ConversionError
from mlgate.convert.refs import ByteSource, DeflatedRange, FileRange, InlineBytes, TensorRef

CHUNK = 8 << 20
MAX_INFLATED_VIEW = 1 << 30  # a non-contiguous view of a compressed member is inflated whole
_FORMATS: dict[int, Literal["B", "H", "I", "Q"]] = {1: "B", 2: "H", 4: "I", 8: "Q"}


@dataclass(frozen=True)
class View:
    """A checked view: byte offset of its first element, output size, simplified layout."""

    start: int
    nbytes: int
    itemsize: int
    shape: tuple[int, ...]  # size-1 dimensions dropped, mergeable dimensions merged
    stride: tuple[int, ...]

    @property
    def contiguous(self) -> bool:
        return not self.shape or (len(self.shape) == 1 and self.stride[0] == 1)


def plan(t: TensorRef, storage_len: int) -> View:
    """Check that ``t`` lies inside a storage of ``storage_len`` bytes; simplify its layout."""
    size = t.dtype.itemsize
    if t.numel == 0:
        return View(0, 0, size, (), ())
    last = t.offset + sum((d - 1) * s for d, s in zip(t.shape, t.stride, strict=True))
    if (last + 1) * size > storage_len:
        raise ConversionError(
            f"tensor view (offset {t.offset}, size {t.shape}, stride {t.stride}) reaches "
            f"byte {(last + 1) * size}, past the end of its {storage_len}-byte storage"
        )
    dims = [(d, s) for d, s in zip(t.shape, t.stride, strict=True) if d != 1]
    merged: list[tuple[int, int]] = []
    for d, s in reversed(dims):
        if merged and s == merged[-1][0] * merged[-1][1]:
            inner_d, inner_s = merged.pop()
            merged.append((d * inner_d, inner_s))
        else:
            merged.append((d, s))
    merged.reverse()
    return View(
        t.offset * size,
        t.nbytes,
        size,
        tuple(d for d, _ in merged),
        tuple(s for _, s in merged),
    )


class Reader:
    """Opens each source file once and maps it only when a strided view needs it."""

    def __init__(self) -> None:
        self._files: dict[Path, int] = {}
        self._maps: dict[Path, mmap.mmap] = {}

    def __enter__(self) -> Reader:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for m in self._maps.values():
            with contextlib.suppress(BufferError):
                m.close()
        for fd in self._files.values():
            os.close(fd)

    def fd(self, path: Path) -> int:
        if path not in self._files:
            try:
                self._files[path] = os.open(path, os.O_RDONLY)
            except OSError as e:
                raise ConversionError(f"cannot read {path}: {e.strerror or e}") from e
        return self._files[path]

    def mapped(self, path: Path) -> mmap.mmap:
        if path not in self._maps:
            self._maps[path] = mmap.mmap(self.fd(path), 0, access=mmap.ACCESS_READ)
        return self._maps[path]

    def chunks(self, source: ByteSource, view: View) -> Iterator[bytes]:
        """The view's bytes in row-major order, in chunks of about :data:`CHUNK` bytes."""
        if view.nbytes == 0:
            return
        if isinstance(source, InlineBytes):
            yield from _gather(memoryview(source.data), view)
        elif isinstance(source, FileRange):
            if view.contiguous:
                yield from self._pread(source, view)
            else:
                mv = memoryview(self.mapped(source.path))[source.offset :]
                try:
                    yield from _gather(mv, view)
                finally:
                    mv.release()
        elif view.contiguous:
            yield from self._inflate(source, source.skip + view.start, view.nbytes)
        else:
            if source.length > MAX_INFLATED_VIEW:
                raise ConversionError("a strided view of a large compressed member")
            data = b"".join(self._inflate(source, source.skip, source.length))
            yield from _gather(memoryview(data), view)

    def copy(self, source: ByteSource, view: View, out: int) -> None:
        """Append the view's bytes to the file descriptor ``out``."""
        if isinstance(source, FileRange) and view.contiguous and view.nbytes:
            _copy_range(self.fd(source.path), source.offset + view.start, view.nbytes, out)
            return
        for chunk in self.chunks(source, view):
            write_all(out, chunk)

    def _pread(self, source: FileRange, view: View) -> Iterator[bytes]:
        fd = self.fd(source.path)
        pos, left = source.offset + view.start, view.nbytes
        while left:
            data = os.pread(fd, min(left, CHUNK), pos)
            if not data:
                raise ConversionError(f"{source.path} ends inside a tensor's bytes")
            pos, left = pos + len(data), left - len(data)
            yield data

    def _inflate(self, source: DeflatedRange, skip: int, length: int) -> Iterator[bytes]:
        fd = self.fd(source.path)
        inflater = zlib.decompressobj(-15)
        pos, end = source.offset, source.offset + source.compressed_length
        while length and pos < end:
            raw = os.pread(fd, min(CHUNK, end - pos), pos)
            if not raw:
                break
            pos += len(raw)
            try:
                data = inflater.decompress(raw, CHUNK * 4)
                while inflater.unconsumed_tail and len(data) < CHUNK * 4:
                    data += inflater.decompress(inflater.unconsumed_tail, CHUNK * 4)
            except zlib.error as e:
                raise ConversionError(f"{source.path}: compressed data is corrupt: {e}") from e
            if inflater.unconsumed_tail:
                raise ConversionError(f"{source.path}: compressed member expands too much")
            if skip:
                cut = min(skip, len(data))
                data, skip = data[cut:], skip - cut
            data = data[:length]
            length -= len(data)
            if data:
                yield data
        if length:
            raise ConversionError(f"{source.path}: compressed member ends inside a tensor")


def _gather(buf: memoryview, view: View) -> Iterator[bytes]:
    """Row-major bytes of a strided view of ``buf`` (element offsets from ``view.start``)."""
    size = view.itemsize
    if size not in _FORMATS:
        raise ConversionError(f"{size}-byte elements cannot be gathered")
    base = view.start // size
    usable = len(buf) - len(buf) % size
    elems = buf[:usable].cast(_FORMATS[size])
    try:
        if view.contiguous:
            for pos in range(base, base + view.nbytes // size, CHUNK // size):
                yield elems[pos : min(pos + CHUNK // size, base + view.nbytes // size)].tobytes()
            return
        *outer, inner = view.shape
        *outer_stride, inner_stride = view.stride
        span = (inner - 1) * inner_stride + 1
        pending: list[bytes] = []
        held = 0
        for index in product(*(range(d) for d in outer)):
            start = base + sum(i * s for i, s in zip(index, outer_stride, strict=True))
            if inner_stride:
                row = elems[start : start + span : inner_stride].tobytes()
            else:  # an expanded (broadcast) dimension repeats one element
                row = elems[start : start + 1].tobytes() * inner
            pending.append(row)
            held += len(row)
            if held >= CHUNK:
                yield b"".join(pending)
                pending, held = [], 0
        if pending:
            yield b"".join(pending)
    finally:
        elems.release()


def _copy_range(src: int, offset: int, length: int, out: int) -> None:
    """Kernel-side copy of ``length`` bytes at ``offset`` of ``src`` to the end of ``out``."""
    copy = getattr(os, "copy_file_range", None)
    while length:
        step = min(length, 1 << 30)
        try:
            done = copy(src, out, step, offset) if copy else 0
        except OSError:
            copy, done = None, 0  # e.g. EXDEV on older kernels: fall back to read/write
        if not done:
            data = os.pread(src, min(step, CHUNK), offset)
            if not data:
                raise ConversionError("the source file ends inside a tensor's bytes")
            write_all(out, data)
            done = len(data)
        offset, length = offset + done, length - done


def write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]
