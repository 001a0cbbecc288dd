"""NumPy ``.npy`` arrays: object arrays carry a pickle that ``numpy.load`` unpickles."""

from __future__ import annotations

import ast
import math
import re
import struct
import warnings

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source

MAGIC = b"\x93NUMPY"
NUMPY_MAX_HEADER = 10_000  # numpy.load refuses larger headers unless told otherwise
_SIMPLE = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)(\[[a-zA-Z0-9]+\])?$")
_ITEM_SIZES = {
    "b": 1,
    "?": 1,
    "h": 2,
    "H": 2,
    "i": 4,
    "I": 4,
    "l": 8,
    "L": 8,
    "q": 8,
    "Q": 8,
    "e": 2,
    "f": 4,
    "d": 8,
    "g": 16,
    "F": 8,
    "D": 16,
    "G": 32,
    "B": 1,
    "O": 8,
}


class _BadDescr(Exception):
    pass


def scan_npy(source: Source, ctx: ScanContext) -> str:
    """Validate the header; hand object-array data to the pickle analysis."""
    head = source.head(12)
    major = head[6] if len(head) > 6 else 0
    if major not in (1, 2, 3):
        ctx.add(rules.MALFORMED, source.location, f"unsupported .npy version {major}")
        return "numpy"
    fmt, start = ("<H", 10) if major == 1 else ("<I", 12)
    if len(head) < start:  # cut inside the header length field
        ctx.incomplete(source, ".npy header is truncated", rules.MALFORMED)
        return "numpy"
    header_len = struct.unpack_from(fmt, head, 8)[0]
    if header_len > ctx.limits.max_npy_header:
        ctx.incomplete(
            source, f".npy header of {header_len} bytes exceeds the limit", rules.LIMIT_EXCEEDED
        )
        return "numpy"
    with source.open() as f:
        f.seek(start) if source.seekable else f.read(start)
        raw = f.read(header_len)
    if len(raw) < header_len:  # the data offset would lie past the end of the file
        ctx.incomplete(source, ".npy header is truncated", rules.MALFORMED)
        return "numpy"
    header = _parse_header(raw)
    if header is None:
        ctx.add(
            rules.MALFORMED,
            source.location,
            ".npy header is not a valid dictionary literal",
            raw[:300].decode("latin-1"),
        )
        return "numpy"
    if header_len > NUMPY_MAX_HEADER:
        ctx.add(
            rules.MALFORMED,
            source.location,
            f".npy header of {header_len} bytes: numpy.load refuses it by default",
        )
    data_offset = start + header_len
    descr = header.get("descr")
    try:
        is_object, itemsize = _describe(descr)
    except _BadDescr:
        ctx.incomplete(source, f".npy dtype {descr!r} could not be interpreted")
        return "numpy"
    if is_object:
        size = (source.size or data_offset) - data_offset
        ctx.scan(source.slice("<object array pickle>", data_offset, size).with_format("pickle"))
        return "numpy-object"
    _check_size(source, ctx, header.get("shape"), itemsize, data_offset)
    return "numpy"


def _parse_header(raw: bytes) -> dict[str, object] | None:
    try:
        with warnings.catch_warnings():  # invalid escapes in hostile strings only warn
            warnings.simplefilter("ignore")
            value = ast.literal_eval(raw.decode("latin-1").strip())  # literals only, never code
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def _describe(descr: object, depth: int = 0) -> tuple[bool, int]:
    """(contains Python objects, item size) of a .npy ``descr``."""
    if depth > 32:
        raise _BadDescr
    if isinstance(descr, str):
        m = _SIMPLE.match(descr)
        if not m:
            raise _BadDescr
        code, digits = m.group(1), m.group(2)
        if code == "O":
            return True, 8
        if code in ("U", "S", "V", "a", "c", "f", "i", "u", "b", "M", "m"):
            size = int(digits) if digits else _ITEM_SIZES.get(code, 0)
            return False, size * (4 if code == "U" else 1)
        return False, _ITEM_SIZES.get(code, 0)
    if isinstance(descr, list):
        obj, total = False, 0
        for field in descr:
            if not isinstance(field, tuple) or len(field) < 2:
                raise _BadDescr
            sub_obj, sub_size = _describe(field[1], depth + 1)
            count = math.prod(field[2]) if len(field) > 2 and isinstance(field[2], tuple) else 1
            obj, total = obj or sub_obj, total + sub_size * count
        return obj, total
    raise _BadDescr


def _check_size(
    source: Source, ctx: ScanContext, shape: object, itemsize: int, offset: int
) -> None:
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        ctx.add(rules.MALFORMED, source.location, f".npy shape {shape!r} is invalid")
        return
    if source.size is None:
        return
    expected = math.prod(shape) * itemsize
    actual = source.size - offset
    if actual < expected:
        ctx.add(
            rules.MALFORMED,
            source.location,
            f".npy data is truncated: {actual} bytes, the header needs {expected}",
        )
    elif actual > expected:
        ctx.add(
            rules.TRAILING_DATA,
            ctx.at(source, offset + expected),
            f"{actual - expected} bytes follow the array data",
        )
