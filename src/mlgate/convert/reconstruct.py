"""Restricted reconstruction: a pickle program read as tensors, arrays and containers only.

The program comes from mlgate's pickle VM (``mlgate.scan.pickle``), which never imports or
calls anything. Here every global it imports and every call it would make is checked against
a short list of what ``torch.save``, NumPy and joblib pickles of plain data use; anything
else (including calls whose result is discarded) refuses the whole file with findings. What
remains is evaluated into plain Python data with :class:`TensorRef` leaves.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mlgate.convert.dtypes import (
    BY_TORCH,
    STORAGE_CLASSES,
    UNSUPPORTED_STORAGES,
    DType,
    numpy_dtype,
)
from mlgate.convert.errors import ConversionError, ConversionRefused
from mlgate.convert.refs import ByteSource, FileRange, InlineBytes, Node, TensorRef
from mlgate.findings import Finding, Location, Severity
from mlgate.scan import rules
from mlgate.scan.pickle.policy import Policy
from mlgate.scan.pickle.program import Program
from mlgate.scan.pickle.render import ValueRenderer
from mlgate.scan.pickle.values import (
    Attr,
    Blob,
    Call,
    Global,
    PDict,
    Persistent,
    PList,
    PSet,
    Value,
    deref,
)

TENSOR_REBUILDERS = frozenset(
    {
        "torch._utils._rebuild_tensor",
        "torch._utils._rebuild_tensor_v2",
        "torch._utils._rebuild_tensor_v3",
    }
)
PARAMETER_REBUILDERS = frozenset(
    {"torch._utils._rebuild_parameter", "torch._utils._rebuild_parameter_with_state"}
)
ARRAY_RECONSTRUCT = frozenset(
    {"numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct"}
)
ARRAY_FROMBUFFER = frozenset({"numpy.core.numeric._frombuffer", "numpy._core.numeric._frombuffer"})
NUMPY_SCALAR = frozenset({"numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar"})
NUMPY_DTYPE = "numpy.dtype"
ORDERED_DICT = "collections.OrderedDict"
TORCH_SIZE = "torch.Size"
CODECS_ENCODE = "_codecs.encode"
JOBLIB_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
UNTYPED_STORAGE = "torch.storage.UntypedStorage"

CALLABLE = (
    TENSOR_REBUILDERS
    | PARAMETER_REBUILDERS
    | ARRAY_RECONSTRUCT
    | ARRAY_FROMBUFFER
    | NUMPY_SCALAR
    | {NUMPY_DTYPE, ORDERED_DICT, TORCH_SIZE, CODECS_ENCODE, JOBLIB_WRAPPER}
)
# Objects whose state BUILD may set: the state is data, read below, never a __setstate__.
STATEFUL = ARRAY_RECONSTRUCT | {NUMPY_DTYPE, ORDERED_DICT, JOBLIB_WRAPPER}
VALUES = frozenset(
    {"numpy.ndarray", UNTYPED_STORAGE}
    | {f"torch.{name}" for name in (*STORAGE_CLASSES, *UNSUPPORTED_STORAGES, *BY_TORCH)}
)
MAX_LATIN1_BLOB = 1 << 30
_SCALAR_FORMATS = {"f8": "d", "f4": "f", "f2": "e", "i8": "q", "i4": "i", "i2": "h", "i1": "b"}
_SCALAR_FORMATS |= {"u8": "Q", "u4": "I", "u2": "H", "u1": "B", "b1": "?"}


@dataclass(frozen=True)
class StorageDecl:
    """A storage as the pickle declares it: element type (None: untyped bytes) and size."""

    dtype: DType | None
    nbytes: int


@dataclass
class Reconstruction:
    """The data a program builds, the storages it names, and bytes it carries itself."""

    tree: Node
    storages: dict[str, StorageDecl] = field(default_factory=dict)
    sources: dict[str, ByteSource] = field(default_factory=dict)


class _Refusal(Exception):
    def __init__(self, message: str, at: Call | Persistent | None = None) -> None:
        super().__init__(message)
        self.at = at


def qualname(value: Value) -> str | None:
    """``module.name`` of a value that is (or resolves to) a global."""
    value = deref(value)
    return value.qualname if isinstance(value, Global) else None


def reconstruct(prog: Program, where: Location, stream: Path | None) -> Reconstruction:
    """Check then evaluate ``prog``; ``stream`` is the file its offsets refer to (if any).

    Raises :class:`ConversionRefused` when the program does anything but build plain data,
    :class:`ConversionError` when it is malformed or truncated.
    """
    findings = check_program(prog, where)
    if findings:
        raise ConversionRefused(
            f"{where.artifact}: not plain tensors and data; refused without running it",
            findings,
        )
    if not prog.complete:
        reason = prog.limit or prog.error or "it ended early"
        raise ConversionError(f"{where.artifact}: the pickle could not be read: {reason}")
    evaluator = _Evaluator(prog, stream)
    try:
        tree = evaluator.node(prog.result)
    except _Refusal as e:
        raise ConversionRefused(str(e), [_finding(where, e.at, str(e), Severity.HIGH)]) from None
    except RecursionError:
        raise ConversionError(f"{where.artifact}: data nested too deeply") from None
    except ConversionError as e:
        raise ConversionError(f"{where.artifact}: {e}") from None
    return Reconstruction(tree, evaluator.storages, evaluator.sources)


def check_program(prog: Program, where: Location) -> list[Finding]:
    """One finding per global or call the restricted reconstruction does not honour."""
    policy = Policy()
    findings: list[Finding] = []
    seen: set[str] = set()
    for g in prog.globals:
        if g.qualname in CALLABLE or g.qualname in VALUES or g.qualname in seen:
            continue
        seen.add(g.qualname)
        verdict = policy.classify(g.module, g.name)
        severity = verdict.severity or Severity.LOW
        message = (
            f"imports {g.qualname} ({verdict.reason}), which is not a tensor, array or "
            "container rebuild function"
        )
        loc = Location(where.path, where.members, g.offset, g.index)
        findings.append(Finding(rules.CONVERSION_REFUSED.id, severity, message, loc))
    renderer = ValueRenderer(max_str=80, budget=300)
    for call in prog.calls:
        problem = _call_problem(call)
        if problem is not None and qualname(call.func) not in seen:
            loc = Location(where.path, where.members, call.offset, call.index)
            findings.append(
                Finding(
                    rules.CONVERSION_REFUSED.id,
                    Severity.HIGH,
                    problem,
                    loc,
                    renderer.call(call),
                )
            )
    for anomaly in prog.anomalies:
        loc = Location(where.path, where.members, anomaly.offset, anomaly.index)
        findings.append(Finding(rules.FRAME_MISMATCH.id, Severity.HIGH, anomaly.message, loc))
    if prog.nested:
        findings.append(
            _finding(where, None, "holds NumPy object arrays (nested pickles)", Severity.HIGH)
        )
    return findings


def _call_problem(call: Call) -> str | None:
    func = call.func
    if isinstance(func, Attr):
        obj = deref(func.obj)
        target = qualname(obj.func) if isinstance(obj, Call) else None
        if call.kind == "BUILD" and target in STATEFUL:
            return None
        if call.kind == "SETITEM" and target == ORDERED_DICT:
            return None
        return f"calls a method ({call.kind.lower()}) on an object that is not plain data"
    name = qualname(func)
    if name in CALLABLE:
        return None
    if name is None:
        return "calls something that is not a named global (a computed callable)"
    return f"calls {name}, which is not a tensor, array or container rebuild function"


def _finding(
    where: Location, at: Call | Persistent | None, message: str, severity: Severity
) -> Finding:
    index = at.index if at is not None else None
    offset = at.offset if isinstance(at, Call) else None
    loc = Location(where.path, where.members, offset, index)
    return Finding(rules.CONVERSION_REFUSED.id, severity, message, loc)


class _Evaluator:
    """Evaluates an already checked program into plain data; shared references stay shared."""

    def __init__(self, prog: Program, stream: Path | None) -> None:
        self.stream = stream
        self.storages: dict[str, StorageDecl] = {}
        self.sources: dict[str, ByteSource] = {}
        self.items: dict[int, list[tuple[Value, Value]]] = {}
        for call in prog.calls:
            if call.kind == "SETITEM" and isinstance(call.func, Attr):
                target = deref(call.func.obj)
                args = deref(call.args)
                if isinstance(args, tuple) and len(args) == 2:
                    self.items.setdefault(id(target), []).append((args[0], args[1]))
        self.cache: dict[int, Node] = {}
        self.active: set[int] = set()

    def node(self, raw: Value) -> Node:
        value = deref(raw)
        if value is None or isinstance(value, bool | int | float | str | bytes):
            return value
        key = id(value)
        if key in self.cache:
            return self.cache[key]
        if key in self.active:
            raise ConversionError("the data refers to itself (a recursive structure)")
        self.active.add(key)
        try:
            result = self._build(value)
        finally:
            self.active.discard(key)
        self.cache[key] = result
        return result

    def _build(self, value: Value) -> Node:
        if isinstance(value, tuple):
            return tuple(self.node(v) for v in value)
        if isinstance(value, PList):
            return [self.node(v) for v in value.items]
        if isinstance(value, PSet):
            return [self.node(v) for v in value.items]
        if isinstance(value, PDict):
            return self._dict(value.items)
        if isinstance(value, Call):
            return self._call(value)
        if isinstance(value, Global):
            if value.module == "torch" and value.name in BY_TORCH:
                return value.qualname
            raise _Refusal(f"uses {value.qualname} itself as a value")
        if isinstance(value, Persistent):
            return self._joblib_array(value)
        if isinstance(value, Blob):
            raise ConversionError(f"a {value.length}-byte value outside any tensor")
        raise _Refusal(f"holds an object mlgate does not rebuild ({type(value).__name__})")

    def _dict(self, pairs: list[tuple[Value, Value]]) -> dict[Node, Node]:
        out: dict[Node, Node] = {}
        for k, v in pairs:
            key = self.node(k)
            try:
                out[key] = self.node(v)
            except TypeError:  # an unhashable key (a list...): the real loader fails too
                raise ConversionError(f"a dictionary key of type {type(key).__name__}") from None
        return out

    def _call(self, call: Call) -> Node:
        name = qualname(call.func)
        args = _args(call)
        if name == ORDERED_DICT:
            if args:
                raise ConversionError("OrderedDict built from arguments")
            if call.state is not None:
                self.node(call.state)  # torch's `_metadata` (module versions): data, dropped
            return self._dict(self.items.get(id(call), []))
        if name == TORCH_SIZE:
            return _ints(args[0] if args else (), "torch.Size")
        if name in TENSOR_REBUILDERS:
            return self._tensor(name, args)
        if name in PARAMETER_REBUILDERS:
            return self._parameter(args)
        if name in ARRAY_RECONSTRUCT:
            return self._reconstructed_array(call)
        if name in ARRAY_FROMBUFFER:
            return self._frombuffer(call, args)
        if name in NUMPY_SCALAR:
            return _scalar(args)
        if name == NUMPY_DTYPE:
            return _dtype_of(call).torch
        if name == CODECS_ENCODE:
            raise ConversionError("a text-encoded byte string mlgate could not decode")
        raise _Refusal(f"calls {name}", call)

    # ------------------------------------------------------------------ torch tensors
    def _tensor(self, name: str, args: tuple[Value, ...]) -> TensorRef:
        if len(args) < 4:
            raise ConversionError(f"{name} with {len(args)} arguments")
        key, declared = self._storage(args[0])
        dtype = declared
        if name.endswith("_v3"):
            if len(args) < 7:
                raise ConversionError(f"{name} with {len(args)} arguments")
            dtype_name = qualname(args[6])
            dtype = BY_TORCH.get((dtype_name or "").removeprefix("torch."))
            if dtype is None:
                raise ConversionError(f"tensor element type {dtype_name} is not supported")
        if dtype is None:
            raise ConversionError("a tensor over an untyped storage without an element type")
        if len(args) >= 6:
            _require_empty(self.node(args[5]), "backward hooks")
        metadata_at = 7 if name.endswith("_v3") else 6
        if len(args) > metadata_at:
            _require_empty(self.node(args[metadata_at]), "tensor metadata")
        offset = _int(args[1], "storage offset")
        shape = _ints(args[2], "tensor size")
        stride = _ints(args[3], "tensor stride")
        if len(shape) != len(stride):
            raise ConversionError(f"tensor size {shape} and stride {stride} differ in length")
        return TensorRef(key, dtype, shape, stride, offset)

    def _parameter(self, args: tuple[Value, ...]) -> TensorRef:
        data = self.node(args[0]) if args else None
        if not isinstance(data, TensorRef):
            raise ConversionError("a Parameter without tensor data")
        if len(args) >= 3:
            _require_empty(self.node(args[2]), "backward hooks")
        if len(args) >= 4:
            self.node(args[3])  # Python attributes of the Parameter: data, dropped
        return data

    def _storage(self, raw: Value) -> tuple[str, DType | None]:
        pers = deref(raw)
        if not isinstance(pers, Persistent):
            raise ConversionError("a tensor whose storage is not a persistent record")
        pid = deref(pers.pid)
        if not isinstance(pid, tuple) or len(pid) not in (5, 6) or deref(pid[0]) != "storage":
            raise ConversionError(f"unexpected persistent id {pid!r:.80}")
        cls = qualname(pid[1]) or ""
        key, numel = deref(pid[2]), _int(pid[4], "storage size")
        if not isinstance(key, str):
            raise ConversionError("a storage key that is not a string")
        if len(pid) == 6 and deref(pid[5]) is not None:
            raise ConversionError("pre-1.0 storage views are not supported")
        dtype = self._storage_dtype(cls)
        decl = StorageDecl(dtype, numel * (dtype.itemsize if dtype else 1))
        if self.storages.setdefault(key, decl) != decl:
            raise ConversionError(f"storage {key!r} is declared twice, differently")
        return key, dtype

    @staticmethod
    def _storage_dtype(kind: str) -> DType | None:
        if kind == UNTYPED_STORAGE:
            return None
        short = kind.removeprefix("torch.")
        if short in STORAGE_CLASSES:
            return BY_TORCH[STORAGE_CLASSES[short]]
        raise ConversionError(f"storage type {kind} cannot be represented in safetensors")

    # ------------------------------------------------------------------ NumPy arrays
    def _reconstructed_array(self, call: Call) -> TensorRef:
        state = deref(call.state)
        if not isinstance(state, tuple) or len(state) != 5:
            raise ConversionError("a NumPy array without its state")
        _, shape, dtype_call, fortran, data = state
        dtype = _dtype_of(deref(dtype_call))
        return self._array(call, _ints(shape, "array shape"), dtype, deref(fortran) is True, data)

    def _frombuffer(self, call: Call, args: tuple[Value, ...]) -> TensorRef:
        if len(args) != 4:
            raise ConversionError("numpy _frombuffer with unexpected arguments")
        dtype = _dtype_of(deref(args[1]))
        shape = _ints(args[2], "array shape")
        return self._array(call, shape, dtype, deref(args[3]) == "F", args[0])

    def _joblib_array(self, pers: Persistent) -> TensorRef:
        wrapper = deref(pers.wrapper)
        if not isinstance(wrapper, Call) or pers.data_offset is None or self.stream is None:
            raise _Refusal(f"a persistent object {pers.pid!r:.60} mlgate does not rebuild", pers)
        state = deref(wrapper.state)
        if not isinstance(state, PDict) or qualname(state.get_str("subclass")) != "numpy.ndarray":
            raise _Refusal("a joblib array of a subclass other than numpy.ndarray", pers)
        dtype = _dtype_of(deref(state.get_str("dtype")))
        shape = _ints(state.get_str("shape"), "array shape")
        ref = strided(f"joblib:{pers.index}", dtype, shape, state.get_str("order") == "F")
        length = ref.nbytes
        self.storages[ref.storage] = StorageDecl(dtype, length)
        self.sources[ref.storage] = FileRange(self.stream, pers.data_offset, length)
        return ref

    def _array(
        self, call: Call, shape: tuple[int, ...], dtype: DType, fortran: bool, data: Value
    ) -> TensorRef:
        ref = strided(f"pickle:{call.index}", dtype, shape, fortran)
        source = self._bytes_source(deref(data))
        self.storages[ref.storage] = StorageDecl(dtype, source.length)
        self.sources[ref.storage] = source
        return ref

    def _bytes_source(self, data: Value) -> ByteSource:
        if isinstance(data, bytes):
            return InlineBytes(data)
        if isinstance(data, Blob) and data.kind != "str" and self.stream is not None:
            return FileRange(self.stream, data.offset, data.length)
        if isinstance(data, Call) and qualname(data.func) == CODECS_ENCODE:
            args = _args(data)
            blob = deref(args[0]) if args else None
            if isinstance(blob, Blob) and blob.kind == "str" and self.stream is not None:
                return InlineBytes(_latin1_blob(self.stream, blob))
        raise ConversionError("NumPy array data that is not a byte string")


def strided(key: str, dtype: DType, shape: tuple[int, ...], fortran: bool) -> TensorRef:
    """A dense array of ``shape`` at the start of storage ``key`` (C or Fortran order)."""
    dims = list(reversed(shape)) if not fortran else list(shape)
    strides: list[int] = []
    step = 1
    for dim in dims:
        strides.append(step)
        step *= max(dim, 1)
    if not fortran:
        strides.reverse()
    return TensorRef(key, dtype, shape, tuple(strides), 0)


def _latin1_blob(stream: Path, blob: Blob) -> bytes:
    """Protocol-2 NumPy pickles carry array bytes as text encoded back with latin-1."""
    if blob.length > MAX_LATIN1_BLOB:
        raise ConversionError(f"a {blob.length}-byte text-encoded array is too large")
    with stream.open("rb") as f:
        f.seek(blob.offset)
        raw = f.read(blob.length)
    try:
        return raw.decode("utf-8").encode("latin-1")
    except (UnicodeDecodeError, UnicodeEncodeError) as e:
        raise ConversionError(f"text-encoded array bytes are invalid: {e}") from None


def _dtype_of(value: Value) -> DType:
    if not isinstance(value, Call) or qualname(value.func) != NUMPY_DTYPE:
        raise ConversionError("a NumPy array whose dtype is not a numpy.dtype")
    args = _args(value)
    spec = deref(args[0]) if args else None
    state = deref(value.state)
    order = deref(state[1]) if isinstance(state, tuple) and len(state) > 1 else "|"
    if not isinstance(spec, str) or not isinstance(order, str):
        raise ConversionError("a NumPy dtype mlgate cannot read")
    if spec.startswith("O"):
        raise _Refusal("holds a NumPy object array (its elements are pickled objects)", value)
    if order == ">":
        raise ConversionError(f"big-endian NumPy dtype >{spec} is not supported")
    dtype = numpy_dtype("<" + spec)
    if dtype is None:
        raise ConversionError(f"NumPy dtype {spec!r} has no safetensors equivalent")
    return dtype


def _scalar(args: tuple[Value, ...]) -> Node:
    if len(args) != 2:
        raise ConversionError("a NumPy scalar with unexpected arguments")
    dtype = _dtype_of(deref(args[0]))
    raw = deref(args[1])
    fmt = _SCALAR_FORMATS.get((dtype.numpy or "")[1:])
    if fmt is None or not isinstance(raw, bytes) or len(raw) != struct.calcsize(fmt):
        raise ConversionError(f"a NumPy {dtype.torch} scalar mlgate cannot read")
    value: bool | int | float = struct.unpack("<" + fmt, raw)[0]
    return value


def _args(call: Call) -> tuple[Value, ...]:
    args = deref(call.args)
    if not isinstance(args, tuple):
        raise ConversionError("call arguments that are not a tuple")
    return args


def _int(value: Value, what: str) -> int:
    value = deref(value)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ConversionError(f"{what} {value!r:.40} is not a non-negative integer")
    return value


def _ints(value: Value, what: str) -> tuple[int, ...]:
    value = deref(value)
    if isinstance(value, Call) and qualname(value.func) == TORCH_SIZE:
        value = deref(_args(value)[0]) if _args(value) else ()
    if not isinstance(value, tuple) or len(value) > 64:
        raise ConversionError(f"{what} is not a tuple of at most 64 integers")
    return tuple(_int(v, what) for v in value)


def _require_empty(value: Node, what: str) -> None:
    if value not in (None, {}, (), []):
        raise _Refusal(f"a tensor carries {what} ({value!r:.60})")


def iter_tensors(node: Node) -> Iterator[TensorRef]:
    """Every tensor in a reconstructed tree (depth first)."""
    if isinstance(node, TensorRef):
        yield node
    elif isinstance(node, dict):
        for v in node.values():
            yield from iter_tensors(v)
    elif isinstance(node, list | tuple):
        for v in node:
            yield from iter_tensors(v)
