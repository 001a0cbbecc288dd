"""A small, strict protobuf wire-format decoder over bytes or a memory-mapped file.

No schema and no protobuf library: messages are iterated field by field between two
offsets, so a multi-GB ONNX initializer is skipped by its length prefix and never copied.
Groups (wire types 3 and 4) are rejected: no model format uses them and they only serve
to hide data from readers that skip them differently.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

from mlgate.scan.source import Source

VARINT, I64, LEN, I32 = 0, 1, 2, 5
MAX_FIELD = (1 << 29) - 1


class Buffer(Protocol):
    """What the decoder needs: ``bytes`` and ``mmap.mmap`` both qualify."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes: ...


class ProtoError(Exception):
    """The bytes are not a valid protobuf message (truncated, bad tag, group...)."""


class TooLarge(Exception):
    """The artifact exceeds the in-memory bound and cannot be mapped."""


@dataclass(frozen=True)
class Field:
    """One decoded field: ``value`` for scalars, ``start``/``end`` bounds the payload."""

    number: int
    wire: int
    value: int
    start: int
    end: int


def read_varint(buf: Buffer, pos: int, end: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; raises :class:`ProtoError` when cut off or overlong."""
    chunk = buf[pos : min(pos + 10, end)]
    value = 0
    for i, byte in enumerate(chunk):
        value |= (byte & 0x7F) << (7 * i)
        if byte < 0x80:
            return value, pos + i + 1
    raise ProtoError(f"truncated or overlong varint at offset {pos}")


def fields(buf: Buffer, start: int, end: int) -> Iterator[Field]:
    """Iterate the fields of the message stored in ``buf[start:end]``, checking bounds."""
    pos = start
    while pos < end:
        tag, pos = read_varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if not 1 <= number <= MAX_FIELD:
            raise ProtoError(f"invalid field number {number} at offset {pos}")
        if wire == VARINT:
            value, nxt = read_varint(buf, pos, end)
            yield Field(number, wire, value, pos, nxt)
        elif wire == LEN:
            length, pos = read_varint(buf, pos, end)
            nxt = pos + length
            if nxt > end:
                raise ProtoError(f"field {number} at offset {pos} runs past its message")
            yield Field(number, wire, length, pos, nxt)
        elif wire in (I64, I32):
            nxt = pos + (8 if wire == I64 else 4)
            if nxt > end:
                raise ProtoError(f"fixed-width field {number} truncated at offset {pos}")
            yield Field(number, wire, int.from_bytes(buf[pos:nxt], "little"), pos, nxt)
        else:
            raise ProtoError(f"unsupported wire type {wire} (group) at offset {pos}")
        pos = nxt


def text(buf: Buffer, field: Field, limit: int = 4096) -> str:
    """A string field, decoded leniently and truncated to ``limit`` bytes."""
    if field.wire != LEN:
        raise ProtoError(f"field {field.number} at offset {field.start} is not a string")
    return buf[field.start : min(field.end, field.start + limit)].decode("utf-8", "replace")


def submessages(buf: Buffer, start: int, end: int, number: int) -> Iterator[Field]:
    """The length-delimited fields ``number`` of a message (repeated nested messages)."""
    for f in fields(buf, start, end):
        if f.number == number:
            if f.wire != LEN:
                raise ProtoError(f"field {number} at offset {f.start} is not a message")
            yield f


def is_message(buf: Buffer, start: int, end: int, budget: int = 64) -> bool:
    """True if the first ``budget`` fields of ``buf[start:end]`` decode cleanly."""
    try:
        for i, _ in enumerate(fields(buf, start, end)):
            if i >= budget:
                break
    except ProtoError:
        return False
    return True


@contextmanager
def mapped(source: Source, max_bytes: int) -> Iterator[Buffer]:
    """The artifact's bytes: memory-mapped when it is a real file, else read up to a bound.

    Mapping keeps multi-GB files out of Python memory: only the pages the decoder touches
    are read. Nested or streamed artifacts are read into memory, bounded by ``max_bytes``.
    """
    with source.open() as f:
        fileno = _fileno(f)
        # Map only when the descriptor is exactly this artifact (not a parent file).
        if fileno is not None and source.size and _whole_file(f, fileno, source.size):
            mm = mmap.mmap(fileno, 0, access=mmap.ACCESS_READ)
            try:
                yield mm
            finally:
                mm.close()
            return
        data = f.read(max_bytes + 1)
        if len(data) > max_bytes:
            raise TooLarge(f"larger than {max_bytes} bytes")
        yield data


def _fileno(f: object) -> int | None:
    try:
        return int(f.fileno())  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return None


def _whole_file(f: object, fileno: int, size: int) -> bool:
    try:
        return bool(f.tell() == 0 and os.fstat(fileno).st_size == size)  # type: ignore[attr-defined]
    except (AttributeError, OSError, ValueError):
        return False
