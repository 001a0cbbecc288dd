"""msgpack checkpoints (Flax ``flax.serialization``, ``flax_model.msgpack``).

msgpack holds only data: maps, arrays, numbers, strings, bytes and extension blobs (Flax
stores numpy arrays as ext type 1). Flax's reader turns those blobs into arrays and never
imports anything, so a well-formed file cannot carry code. The structure is walked with a
tiny bounded reader; content that is not msgpack gets the pickle reading.
"""

from __future__ import annotations

import struct

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.pickle import scan_pickle
from mlgate.scan.reader import ByteReader, TruncatedError
from mlgate.scan.source import Source

MAX_ITEMS = 20_000_000

# marker -> (bytes of length field, extra fixed bytes, kind); kind: "blob", "array", "map"
_SIZED: dict[int, tuple[int, int, str]] = {
    0xC4: (1, 0, "blob"), 0xC5: (2, 0, "blob"), 0xC6: (4, 0, "blob"),
    0xC7: (1, 1, "blob"), 0xC8: (2, 1, "blob"), 0xC9: (4, 1, "blob"),
    0xD9: (1, 0, "blob"), 0xDA: (2, 0, "blob"), 0xDB: (4, 0, "blob"),
    0xDC: (2, 0, "array"), 0xDD: (4, 0, "array"), 0xDE: (2, 0, "map"), 0xDF: (4, 0, "map"),
}  # fmt: skip
_FIXED = {0xCA: 4, 0xCB: 8, 0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8, 0xD0: 1, 0xD1: 2, 0xD2: 4,
          0xD3: 8, 0xD4: 2, 0xD5: 3, 0xD6: 5, 0xD7: 9, 0xD8: 17}  # fmt: skip
_LEN = {1: ">B", 2: ">H", 4: ">I"}


class MsgpackError(Exception):
    """Not a well-formed msgpack document."""


def scan_msgpack(source: Source, ctx: ScanContext) -> str:
    """Walk the msgpack structure; a valid document is data only."""
    with source.open() as f:
        reader = ByteReader(f, 0, source.size)
        try:
            items, exts = walk(reader)
        except (MsgpackError, TruncatedError):
            return scan_pickle(source, ctx)
        except _TooMany:
            ctx.incomplete(
                source, f"msgpack with more than {MAX_ITEMS} values", rules.LIMIT_EXCEEDED
            )
            return "msgpack"
        trailing = reader.remaining_known() or 0
    if trailing:
        ctx.add(
            rules.TRAILING_DATA,
            ctx.at(source, (source.size or 0) - trailing),
            f"{trailing} bytes after the msgpack document",
        )
    ctx.add(
        rules.RECOGNISED,
        source.location,
        f"msgpack (Flax-style) checkpoint: {items} values, {exts} extension blobs (arrays); "
        "data only, no code possible",
    )
    return "msgpack"


class _TooMany(Exception):
    pass


def walk(reader: ByteReader) -> tuple[int, int]:
    """Consume one msgpack value (iteratively); returns (values, extension blobs)."""
    pending, items, exts = 1, 0, 0
    while pending:
        pending -= 1
        items += 1
        if items > MAX_ITEMS:
            raise _TooMany
        marker = reader.read(1)[0]
        children = 0
        if marker <= 0x7F or marker >= 0xE0 or marker in (0xC0, 0xC2, 0xC3):
            pass
        elif 0x80 <= marker <= 0x8F:
            children = 2 * (marker & 0x0F)
        elif 0x90 <= marker <= 0x9F:
            children = marker & 0x0F
        elif 0xA0 <= marker <= 0xBF:
            reader.skip(marker & 0x1F)
        elif marker in _FIXED:
            exts += 0xD4 <= marker <= 0xD8
            reader.skip(_FIXED[marker])
        elif marker in _SIZED:
            width, extra, kind = _SIZED[marker]
            n = struct.unpack(_LEN[width], reader.read(width))[0]
            if kind == "blob":
                exts += extra
                reader.skip(n + extra)
            else:
                children = n * (2 if kind == "map" else 1)
        else:
            raise MsgpackError(f"invalid msgpack marker 0x{marker:02x}")
        left = reader.remaining_known()
        pending += children
        if left is not None and pending > left:
            raise MsgpackError("declares more values than the file holds")
    return items, exts
