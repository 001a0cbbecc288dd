"""NumPy ``.npy`` files and ``.npz`` archives (stored or DEFLATE-compressed members)."""

from __future__ import annotations

import ast
import struct
import zlib
from pathlib import Path
from typing import BinaryIO

from mlgate.convert.dtypes import DType, numpy_dtype
from mlgate.convert.errors import ConversionError, ConversionRefused
from mlgate.convert.reconstruct import strided
from mlgate.convert.refs import ByteSource, Checkpoint, DeflatedRange, FileRange, Node
from mlgate.findings import Finding, Location, Severity
from mlgate.scan import rules
from mlgate.scan.ziputil import ZipEntry

DEFLATED = 8
MAGIC = b"\x93NUMPY"
NUMPY_MAX_HEADER = 10_000  # numpy.load's own limit
_HEAD_READ = 16 + NUMPY_MAX_HEADER


def read_npy(path: Path, f: BinaryIO, size: int) -> Checkpoint:
    """One array, named after the file (``weights.npy`` -> tensor ``weights``)."""
    f.seek(0)
    dtype, shape, fortran, start = _header(path, path.name, f.read(_HEAD_READ))
    key = path.stem
    ref = strided(key, dtype, shape, fortran)
    if start + ref.nbytes > size:
        raise ConversionError(f"{path}: array data is truncated ({size - start} of {ref.nbytes})")
    return Checkpoint(path, "npy", {key: ref}, {key: FileRange(path, start, ref.nbytes)})


def read_npz(path: Path, f: BinaryIO, members: dict[str, ZipEntry]) -> Checkpoint:
    """Every ``name.npy`` member becomes tensor ``name``."""
    tree: dict[Node, Node] = {}
    sources: dict[str, ByteSource] = {}
    for name, entry in members.items():
        if entry.is_dir:
            continue
        if not name.endswith(".npy"):
            raise ConversionError(f"{path}: member {name} is not a .npy array")
        key = name.removesuffix(".npy")
        head = _member_head(path, f, entry)
        dtype, shape, fortran, start = _header(path, name, head)
        ref = strided(key, dtype, shape, fortran)
        if start + ref.nbytes > entry.size:
            raise ConversionError(f"{path}: member {name} is truncated")
        if entry.method == DEFLATED:
            sources[key] = DeflatedRange(
                path, entry.data_offset, entry.compressed_size, ref.nbytes, start
            )
        elif entry.method == 0 and entry.compressed_size == entry.size:
            sources[key] = FileRange(path, entry.data_offset + start, ref.nbytes)
        else:
            raise ConversionError(f"{path}: member {name} uses compression method {entry.method}")
        tree[key] = ref
    return Checkpoint(path, "npz", tree, sources)


def _member_head(path: Path, f: BinaryIO, entry: ZipEntry) -> bytes:
    f.seek(entry.data_offset)
    raw = f.read(min(entry.compressed_size, _HEAD_READ))
    if entry.method != DEFLATED:
        return raw
    try:
        return zlib.decompressobj(-15).decompress(raw, _HEAD_READ)
    except zlib.error as e:
        raise ConversionError(f"{path}: member {entry.name} is corrupt: {e}") from e


def _header(path: Path, name: str, head: bytes) -> tuple[DType, tuple[int, ...], bool, int]:
    """(dtype, shape, Fortran order, offset of the data) of a .npy header."""
    if not head.startswith(MAGIC) or len(head) < 10 or head[6] not in (1, 2, 3):
        raise ConversionError(f"{path}: {name} is not a .npy array")
    fmt, start = ("<H", 10) if head[6] == 1 else ("<I", 12)
    if len(head) < start:  # versions 2 and 3 have a 4-byte header length
        raise ConversionError(f"{path}: {name} has a truncated .npy header")
    header_len = struct.unpack_from(fmt, head, 8)[0]
    header = _literal(head[start : start + header_len]) if header_len <= NUMPY_MAX_HEADER else None
    if not isinstance(header, dict):
        raise ConversionError(f"{path}: {name} has an invalid .npy header")
    descr, shape, fortran = header.get("descr"), header.get("shape"), header.get("fortran_order")
    if isinstance(descr, str) and descr.lstrip("<>|=").startswith("O"):
        finding = Finding(
            rules.CONVERSION_REFUSED.id,
            Severity.HIGH,
            "a NumPy object array: its elements are pickled objects numpy.load would unpickle",
            Location(str(path), (name,) if name != path.name else ()),
        )
        raise ConversionRefused(f"{path}: object array refused", [finding])
    dtype = numpy_dtype(descr) if isinstance(descr, str) else None
    if dtype is None:
        raise ConversionError(f"{path}: {name} dtype {descr!r} has no safetensors equivalent")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ConversionError(f"{path}: {name} shape {shape!r} is invalid")
    if len(shape) > 64:
        raise ConversionError(f"{path}: {name} has {len(shape)} dimensions")
    return dtype, shape, fortran is True, start + header_len


def _literal(raw: bytes) -> object:
    """The header's Python literal (``ast.literal_eval`` evaluates literals only, never code)."""
    try:
        return ast.literal_eval(raw.decode("latin-1"))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None
