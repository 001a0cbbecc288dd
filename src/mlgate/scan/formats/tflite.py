"""TensorFlow Lite flatbuffers (file identifier ``TFL3``), read with strict bounds checks.

A TFLite model carries no code. What it can require from the host is operators that are
not builtins: custom ops (a native kernel the application must register: MEDIUM) and
Flex ops ("Flex" + a TensorFlow op name, run by the TF kernels of the Flex delegate). Flex
ops are judged like TensorFlow graph ops, so FlexReadFile or FlexWriteFile are HIGH.
Every offset, vector and string is checked against the file before it is read.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

from mlgate.findings import Severity
from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.pickle import read_programs, scan_pickle
from mlgate.scan.formats.tensorflow import op_risk
from mlgate.scan.protowire import Buffer, TooLarge, mapped
from mlgate.scan.source import Source

CUSTOM = 32  # BuiltinOperator.CUSTOM
MAX_BUILTIN = 255  # schema 2.21 stops near 210; beyond 255 no runtime knows the code
# Custom ops that TFLite's own op resolver registers: no application code is needed.
SHIPPED_CUSTOM = frozenset({"TFLite_Detection_PostProcess", "Mfcc", "AudioSpectrogram"})


class FlatError(Exception):
    """An offset, vector or string points outside the file."""


class Flat:
    """Bounds-checked access to flatbuffer tables in ``buf``."""

    def __init__(self, buf: Buffer) -> None:
        self.buf, self.size = buf, len(buf)

    def uint(self, pos: int, width: int, signed: bool = False) -> int:
        """A little-endian integer at ``pos``."""
        if pos < 0 or pos + width > self.size:
            raise FlatError(f"read of {width} bytes at offset {pos} is outside the file")
        return int.from_bytes(self.buf[pos : pos + width], "little", signed=signed)

    def deref(self, pos: int) -> int:
        """Follow the uoffset stored at ``pos``."""
        return pos + self.uint(pos, 4)

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of ``table``, or None when absent."""
        vtable = table - self.uint(table, 4, signed=True)
        vsize = self.uint(vtable, 2)
        if vsize < 4 or vsize % 2:
            raise FlatError(f"invalid vtable at offset {vtable}")
        entry = 4 + 2 * index
        if entry + 2 > vsize:
            return None
        off = self.uint(vtable + entry, 2)
        return table + off if off else None

    def scalar(self, table: int, index: int, width: int, default: int = 0) -> int:
        """A scalar field (signed), or ``default``."""
        pos = self.field(table, index)
        return default if pos is None else self.uint(pos, width, signed=True)

    def table(self, table: int, index: int) -> int | None:
        """The sub-table of field ``index``."""
        pos = self.field(table, index)
        return None if pos is None else self.deref(pos)

    def vector(self, table: int, index: int, elem: int = 4) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        vec = self.deref(pos)
        n = self.uint(vec, 4)
        if vec + 4 + n * elem > self.size:
            raise FlatError(f"vector of {n} elements at offset {vec} runs past the file")
        return vec + 4, n

    def tables(self, table: int, index: int) -> Iterator[int]:
        """The tables of a vector-of-tables field, lazily (vectors can be long)."""
        start, n = self.vector(table, index)
        for i in range(n):
            yield self.deref(start + 4 * i)

    def string(self, table: int, index: int, limit: int = 512) -> str:
        """A string field ("" when absent), truncated to ``limit`` bytes."""
        start, n = self.vector(table, index, 1)
        return self.buf[start : start + min(n, limit)].decode("utf-8", "replace")


def scan_tflite(source: Source, ctx: ScanContext) -> str:
    """Validate the flatbuffer and report non-builtin operators."""
    try:
        with mapped(source, ctx.limits.max_proto_memory) as buf:
            _scan(Flat(buf), source, ctx)
    except TooLarge as e:
        ctx.incomplete(source, f"TFLite model {e}; not analysed", rules.LIMIT_EXCEEDED)
    except FlatError as e:
        ctx.add(rules.MALFORMED, source.location, f"TFLite flatbuffer is invalid: {e}")
    except OSError as e:
        ctx.incomplete(source, f"TFLite model could not be read: {e}")
    # "TFL3" at offset 4 is no proof: a pickle can carry it too, and must still be read.
    if read_programs(source, ctx, joblib=False).is_pickle:
        ctx.add(rules.POLYGLOT, source.location, "TFLite identifier on a file that is a pickle")
        scan_pickle(source, ctx)
    return "tflite"


def _scan(flat: Flat, source: Source, ctx: ScanContext) -> None:
    model = flat.deref(0)
    codes = [_opcode(flat, t) for t in flat.tables(model, 1)]
    used: Counter[int] = Counter()
    operators = 0
    for subgraph in flat.tables(model, 2):
        start, n = flat.vector(subgraph, 3)
        operators += n
        if operators > ctx.limits.max_graph_nodes:
            ctx.incomplete(source, "too many TFLite operators; not analysed", rules.LIMIT_EXCEEDED)
            return
        for i in range(n):
            index = flat.scalar(flat.deref(start + 4 * i), 0, 4)
            if not 0 <= index < len(codes):
                raise FlatError(f"operator uses opcode index {index} of {len(codes)}")
            used[index] += 1
    _check_buffers(flat, model, source, ctx)
    for index, (code, custom) in enumerate(codes):
        _report_opcode(code, custom, used[index], source, ctx)
    names = ", ".join(custom or str(code) for code, custom in codes[:40])
    ctx.add(
        rules.RECOGNISED,
        source.location,
        f"TFLite model (schema {flat.scalar(model, 0, 4)}): {operators} operators, "
        f"{len(codes)} operator codes; a flatbuffer carries no code",
        f"opcodes: {names}",
    )


def _opcode(flat: Flat, table: int) -> tuple[int, str]:
    """(builtin code, custom code); the larger of the deprecated int8 and int32 codes wins."""
    code = max(flat.scalar(table, 0, 1), flat.scalar(table, 3, 4))
    return code, flat.string(table, 1) if code == CUSTOM else ""


def _report_opcode(code: int, custom: str, uses: int, source: Source, ctx: ScanContext) -> None:
    if code < 0:
        raise FlatError(f"negative builtin operator code {code}")
    if code > MAX_BUILTIN:
        ctx.add(rules.CUSTOM_OP, source.location, f"unknown TFLite builtin operator {code}")
    if code != CUSTOM:
        return
    evidence = f"{uses} operator(s)"
    if custom.startswith("Flex"):
        risk = op_risk(custom[4:])
        if risk and risk[0] >= Severity.HIGH:
            message = f"TFLite Flex op {custom} runs TensorFlow op {custom[4:]}, which {risk[1]}"
            ctx.add(rules.DANGEROUS_OP, source.location, message, evidence)
            return
        message = f"TFLite Flex op {custom} needs the TensorFlow (Flex) delegate"
        ctx.add(rules.CUSTOM_OP, source.location, message, evidence, Severity.INFO)
    elif custom in SHIPPED_CUSTOM:
        message = f"TFLite custom op {custom} ships with the TFLite runtime"
        ctx.add(rules.CUSTOM_OP, source.location, message, evidence, Severity.INFO)
    else:
        message = f"TFLite custom op {custom!r} needs a kernel registered by the application"
        ctx.add(rules.CUSTOM_OP, source.location, message, evidence)


def _check_buffers(flat: Flat, model: int, source: Source, ctx: ScanContext) -> None:
    """Buffers stored after the flatbuffer (models over 2 GB) must lie inside the file."""
    for buffer in flat.tables(model, 4):
        flat.vector(buffer, 0, 1)  # inline data: bounds-checked
        offset, size = flat.scalar(buffer, 1, 8), flat.scalar(buffer, 2, 8)
        if offset > 1 and (offset < 0 or size < 0 or offset + size > flat.size):
            raise FlatError(f"buffer at offset {offset} with size {size} is outside the file")
