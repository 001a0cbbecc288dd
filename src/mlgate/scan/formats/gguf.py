"""GGUF (llama.cpp): header, metadata and tensor-info validation, plus chat templates.

A GGUF file carries no code, except the Jinja2 chat template in its metadata, which some
runtimes render (CVE-2024-34359). Every declared count and length is checked against the
bytes left in the file before anything is allocated, so a hostile header cannot make the
scanner allocate or loop for long.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from itertools import pairwise

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.jinja import check_template
from mlgate.scan.reader import ByteReader, TruncatedError
from mlgate.scan.source import Source

MAX_STRING = 64 << 20  # token lists and templates are far smaller
MAX_KV = 1 << 20
MAX_TENSORS = 1 << 20
MAX_ARRAY_DEPTH = 4
MAX_DIMS = 4  # GGML_MAX_DIMS
DEFAULT_ALIGNMENT = 32
TEMPLATE_KEY = "tokenizer.chat_template"

STRING, ARRAY = 8, 9
# value type -> (struct format, size) for fixed-size scalars
_SCALARS: dict[int, tuple[str, int]] = {
    0: ("<B", 1),
    1: ("<b", 1),
    2: ("<H", 2),
    3: ("<h", 2),
    4: ("<I", 4),
    5: ("<i", 4),
    6: ("<f", 4),
    7: ("<B", 1),
    10: ("<Q", 8),
    11: ("<q", 8),
    12: ("<d", 8),
}
# ggml_type -> (block size in elements, bytes per block); from ggml's type traits
_GGML_TYPES: dict[int, tuple[int, int]] = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34),
    9: (32, 40), 10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176),
    14: (256, 210), 15: (256, 292), 16: (256, 66), 17: (256, 74), 18: (256, 98),
    19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82), 23: (256, 136), 24: (1, 1),
    25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}  # fmt: skip


class GGUFError(Exception):
    """The file breaks the GGUF format; the message says where and how."""


@dataclass
class _Tensor:
    name: str
    dims: list[int]
    ggml_type: int
    offset: int


@dataclass
class _Header:
    version: int
    templates: list[tuple[str, str, int]] = field(default_factory=list)  # key, text, offset
    alignment: int = DEFAULT_ALIGNMENT
    tensors: list[_Tensor] = field(default_factory=list)
    kv_count: int = 0


def scan_gguf(source: Source, ctx: ScanContext) -> str:
    """Validate the whole GGUF header and analyse its chat templates."""
    header = _Header(version=0)
    problem = ""
    with source.open() as f:
        reader = ByteReader(f, 0, source.size)
        try:
            _read_header(reader, header)
            _check_tensors(reader, header, source.size)
        except GGUFError as e:
            problem = str(e)
        except TruncatedError as e:
            problem = f"file ends inside the header at offset {reader.tell()} ({e})"
        except (UnicodeDecodeError, struct.error) as e:
            problem = f"invalid value at offset {reader.tell()}: {e}"
    for key, text, offset in header.templates:
        check_template(ctx, ctx.at(source, offset), text, f"GGUF metadata {key}")
    if problem:
        ctx.add(rules.MALFORMED, source.location, f"GGUF: {problem}")
        return "gguf"
    ctx.add(
        rules.RECOGNISED,
        source.location,
        f"GGUF v{header.version}: {header.kv_count} metadata keys, {len(header.tensors)} "
        f"tensors validated; only the chat template ({len(header.templates)} found) can "
        "carry logic, and it was analysed",
    )
    return "gguf"


def _read_header(reader: ByteReader, header: _Header) -> None:
    if reader.read(4) != b"GGUF":
        raise GGUFError("bad magic")
    header.version = _u32(reader)
    if header.version not in (1, 2, 3):
        raise GGUFError(f"unsupported version {header.version}")
    n_tensors, n_kv = _count(reader, header), _count(reader, header)
    # Every key-value takes at least 13 bytes and every tensor info at least 24.
    _check_count(reader, n_kv, MAX_KV, 13, "metadata key-values")
    _check_count(reader, n_tensors, MAX_TENSORS, 24, "tensors")
    header.kv_count = n_kv
    seen: set[str] = set()
    for _ in range(n_kv):
        key = _string(reader, header)
        if key in seen:
            raise GGUFError(f"duplicate metadata key {key!r}")
        seen.add(key)
        vtype = _u32(reader)
        at = reader.tell()
        value = _value(reader, header, vtype, 0)
        if key == TEMPLATE_KEY or key.startswith(TEMPLATE_KEY + "."):
            if not isinstance(value, str):
                raise GGUFError(f"{key} is not a string")
            header.templates.append((key, value, at))
        elif key == "general.alignment":
            if vtype != 4 or not isinstance(value, int) or value <= 0 or value & (value - 1):
                raise GGUFError(f"general.alignment {value!r} is not a power-of-two uint32")
            header.alignment = value
    for _ in range(n_tensors):
        header.tensors.append(_tensor_info(reader, header))


def _tensor_info(reader: ByteReader, header: _Header) -> _Tensor:
    name = _string(reader, header)
    n_dims = _u32(reader)
    if not 1 <= n_dims <= MAX_DIMS:
        raise GGUFError(f"tensor {name!r} has {n_dims} dimensions (1..{MAX_DIMS} allowed)")
    dims = [_count(reader, header) for _ in range(n_dims)]
    ggml_type = _u32(reader)
    offset = struct.unpack("<Q", reader.read(8))[0]
    if ggml_type not in _GGML_TYPES:
        raise GGUFError(f"tensor {name!r} has unknown ggml type {ggml_type}")
    return _Tensor(name, dims, ggml_type, offset)


def _check_tensors(reader: ByteReader, header: _Header, size: int | None) -> None:
    """Tensor data must be aligned, in the file, and not overlap."""
    align = header.alignment
    data_start = -(-reader.tell() // align) * align
    data_size = None if size is None else size - data_start
    if data_size is not None and data_size < 0 and header.tensors:
        raise GGUFError("file ends before the tensor data section")
    spans: list[tuple[int, int, str]] = []
    names: set[str] = set()
    for t in header.tensors:
        if t.name in names:
            raise GGUFError(f"duplicate tensor name {t.name!r}")
        names.add(t.name)
        block, block_bytes = _GGML_TYPES[t.ggml_type]
        elements = 1
        for d in t.dims:
            elements *= d
        if t.dims[0] % block:
            raise GGUFError(f"tensor {t.name!r}: row of {t.dims[0]} is not a multiple of {block}")
        nbytes = elements // block * block_bytes
        if t.offset % align:
            raise GGUFError(f"tensor {t.name!r}: offset {t.offset} not aligned to {align}")
        if data_size is not None and t.offset + nbytes > data_size:
            raise GGUFError(
                f"tensor {t.name!r}: bytes {t.offset}..{t.offset + nbytes} lie outside the "
                f"{data_size}-byte data section"
            )
        spans.append((t.offset, t.offset + nbytes, t.name))
    spans.sort()
    for (_, end, first), (begin, _, second) in pairwise(spans):
        if begin < end:
            raise GGUFError(f"tensors {first!r} and {second!r} overlap")


def _value(reader: ByteReader, header: _Header, vtype: int, depth: int) -> object:
    if vtype in _SCALARS:
        fmt, n = _SCALARS[vtype]
        value: object = struct.unpack(fmt, reader.read(n))[0]
        if vtype == 7 and value not in (0, 1):
            raise GGUFError(f"invalid bool {value} at offset {reader.tell() - 1}")
        return value
    if vtype == STRING:
        return _string(reader, header)
    if vtype == ARRAY:
        if depth >= MAX_ARRAY_DEPTH:
            raise GGUFError(f"arrays nested deeper than {MAX_ARRAY_DEPTH}")
        etype = _u32(reader)
        count = _count(reader, header)
        if etype in _SCALARS:
            n = _SCALARS[etype][1]
            _check_count(reader, count, None, n, "array elements")
            reader.skip(count * n)  # numeric arrays are data only
            return None
        if etype not in (STRING, ARRAY):
            raise GGUFError(f"unknown array element type {etype} at offset {reader.tell()}")
        _check_count(reader, count, None, 8, "array elements")
        for _ in range(count):
            _value(reader, header, etype, depth + 1)
        return None
    raise GGUFError(f"unknown value type {vtype} at offset {reader.tell() - 4}")


def _string(reader: ByteReader, header: _Header) -> str:
    at = reader.tell()
    n = _count(reader, header)
    left = reader.remaining_known()
    if n > MAX_STRING or (left is not None and n > left):
        raise GGUFError(f"string at offset {at} declares {n} bytes, more than the file holds")
    return reader.read(n).decode("utf-8")


def _check_count(reader: ByteReader, n: int, cap: int | None, unit: int, what: str) -> None:
    """A declared count must fit in the bytes left (and under ``cap``) before any loop."""
    left = reader.remaining_known()
    if (cap is not None and n > cap) or (left is not None and n * unit > left):
        raise GGUFError(
            f"declares {n} {what} at offset {reader.tell()}, more than the file can hold"
        )


def _u32(reader: ByteReader) -> int:
    value: int = struct.unpack("<I", reader.read(4))[0]
    return value


def _count(reader: ByteReader, header: _Header) -> int:
    """Counts and lengths are uint64 since v2 (uint32 in v1)."""
    if header.version == 1:
        return _u32(reader)
    value: int = struct.unpack("<Q", reader.read(8))[0]
    return value
