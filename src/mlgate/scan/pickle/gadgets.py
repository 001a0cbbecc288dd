"""Compile-time evaluation of the pure and import-like callables attackers use to hide calls.

Only functions whose result can be computed from constants without side effects are
evaluated here (decoders, string methods, getattr on a *named* global): this is how
``getattr(importlib.import_module('o'+'s'), 'system')`` becomes ``os.system`` in the report.
Output sizes are bounded so a decompression bomb inside a pickle cannot exhaust memory.
"""

from __future__ import annotations

import base64
import binascii
import bz2
import codecs
import lzma
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from mlgate.scan.pickle.policy import normalise_module
from mlgate.scan.pickle.values import (
    Attr,
    AttrGetter,
    Call,
    Global,
    MethodCaller,
    ModuleRef,
    Partial,
    PDict,
    PList,
    Value,
    as_text,
    deref,
)

MAX_DECODED = 16 << 20
_TEXT_CODECS = frozenset(
    "utf-8 utf8 ascii latin1 latin-1 iso-8859-1 utf-16 utf-32 raw_unicode_escape "
    "unicode_escape rot13 rot_13 base64 base_64 hex hex_codec base64_codec".split()
)
# Methods whose result is at most a few times the size of their operands; anything that can
# multiply sizes (__mul__, zfill, format, translate) is never evaluated.
_STR_METHODS = frozenset(
    "decode encode replace lower upper strip lstrip rstrip title capitalize swapcase "
    "__add__ __getitem__".split()
)


class _TooBig(Exception):
    pass


def evaluate(call: Call) -> Value | None:
    """What ``call`` evaluates to, when it can be computed statically; else None."""
    func = deref(call.func)
    args = deref(call.args)
    if not isinstance(args, tuple):
        return None
    kwargs = deref(call.kwargs)
    if kwargs is not None and not (isinstance(kwargs, PDict) and not kwargs.items):
        return None
    try:
        return _dispatch(func, args, call.kind)
    except (
        _TooBig,
        ValueError,
        TypeError,
        IndexError,
        KeyError,
        LookupError,
        OverflowError,
        MemoryError,
        zlib.error,
        lzma.LZMAError,
        OSError,
        binascii.Error,
    ):
        return None


def _dispatch(func: Value, args: tuple[Value, ...], kind: str) -> Value | None:
    if isinstance(func, Partial):
        return _dispatch(deref(func.func), (*func.args, *args), kind)
    if isinstance(func, Attr):
        return _method(deref(func.obj), as_text(func.name), args)
    if isinstance(func, MethodCaller) and args:
        return _method(deref(args[0]), as_text(func.name), func.args)
    if isinstance(func, AttrGetter) and len(args) == 1 and len(func.names) == 1:
        return _getattr(deref(args[0]), func.names[0])
    if not isinstance(func, Global):
        return None
    name = f"{normalise_module(func.module)}.{func.name}"
    if kind == "NEWOBJ" and name == "functools.partial" and args:
        args = args[1:]  # NEWOBJ passes the class first: partial.__new__(partial, f, ...)
    handler = _HANDLERS.get(name)
    return handler(args) if handler is not None else None


def _getattr(obj: Value, name_value: Value) -> Value | None:
    name = as_text(name_value)
    if name is None:
        return Attr(obj, name_value)
    if isinstance(obj, Global):
        return Global(obj.module, f"{obj.name}.{name}", obj.index, obj.offset, via="getattr")
    if isinstance(obj, ModuleRef):
        return Global(obj.name, name, 0, 0, via="getattr")
    return Attr(obj, name)


def _method(obj: Value, name: str | None, args: tuple[Value, ...]) -> Value | None:
    if name is None:
        return None
    if isinstance(obj, str | bytes):
        return _text_method(obj, name, [deref(a) for a in args])
    if isinstance(obj, Global | ModuleRef):
        return _getattr(obj, name)
    return None


def _text_method(obj: str | bytes, name: str, args: list[Value]) -> Value | None:
    if name == "join" and len(args) == 1:
        parts = args[0].items if isinstance(args[0], PList) else args[0]
        texts = [deref(p) for p in parts] if isinstance(parts, tuple | list) else []
        if not texts or not all(isinstance(p, type(obj)) for p in texts):
            return None
        if sum(map(len, texts)) + len(obj) * len(texts) > MAX_DECODED:  # type: ignore[arg-type]
            raise _TooBig
        return obj.join(texts)  # type: ignore[arg-type]
    if name not in _STR_METHODS or not all(isinstance(a, str | bytes | int) for a in args):
        return None
    # replace: each match may grow by len(new), so bound the result before computing it.
    new = args[1] if name == "replace" and len(args) >= 2 else ""
    if isinstance(new, str | bytes) and len(obj) * max(1, len(new)) > MAX_DECODED:
        raise _TooBig
    result = getattr(obj, name)(*args)
    return _bounded(result) if isinstance(result, str | bytes) else None


def _bounded(value: str | bytes) -> str | bytes:
    if len(value) > MAX_DECODED:
        raise _TooBig
    return value


def _bytes_arg(value: Value) -> bytes:
    value = deref(value)
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, bytes):
        return value
    raise TypeError


def _decompress(make: Callable[[], object], data: bytes) -> bytes:
    obj = make()
    out: bytes = obj.decompress(data, MAX_DECODED + 1)  # type: ignore[attr-defined]
    return _bounded(out)  # type: ignore[return-value]


def _codecs_decode(args: tuple[Value, ...]) -> Value | None:
    data = deref(args[0])
    encoding = as_text(args[1]) if len(args) > 1 else "utf-8"
    if encoding is None:
        return None
    encoding = encoding.lower()
    if encoding in ("zlib", "zlib_codec", "zip"):
        return _decompress(zlib.decompressobj, _bytes_arg(data))
    if encoding not in _TEXT_CODECS or not isinstance(data, str | bytes):
        return None
    return _bounded(codecs.decode(data, encoding))  # type: ignore[arg-type]


def _codecs_encode(args: tuple[Value, ...]) -> Value | None:
    data = deref(args[0])
    encoding = (as_text(args[1]) if len(args) > 1 else "utf-8") or ""
    if encoding.lower() not in _TEXT_CODECS or not isinstance(data, str | bytes):
        return None
    return _bounded(codecs.encode(data, encoding))  # type: ignore[arg-type]


def _import(args: tuple[Value, ...]) -> Value | None:
    name = as_text(args[0]) if args else None
    if name is None:
        return None
    fromlist = deref(args[3]) if len(args) > 3 else None
    has_from = bool(fromlist.items if isinstance(fromlist, PList) else fromlist)
    return ModuleRef(name if has_from else name.split(".")[0])


def _import_module(args: tuple[Value, ...]) -> Value | None:
    name = as_text(args[0]) if args else None
    return ModuleRef(name) if name is not None else None


def _getitem(args: tuple[Value, ...]) -> Value | None:
    if len(args) != 2:
        return None
    obj, key = deref(args[0]), as_text(args[1])
    if isinstance(obj, Global) and obj.qualname in ("sys.modules", "sys.__dict__") and key:
        return ModuleRef(key)
    if isinstance(obj, Global | ModuleRef) and key and obj is not None:
        return _getattr(obj, key) if key.isidentifier() else None
    return None


def _concat(args: tuple[Value, ...]) -> Value | None:
    left = deref(args[0]) if len(args) == 2 else None
    if not isinstance(left, str | bytes):
        return None
    return _text_method(left, "__add__", [deref(args[1])])


def _global_from_pair(args: tuple[Value, ...]) -> Value | None:
    mod, name = (as_text(a) for a in args[:2])
    if mod is None or name is None:
        return None
    return Global(mod, name, 0, 0, via="import helper")


def _types_member(args: tuple[Value, ...]) -> Value | None:
    name = as_text(args[0]) if args else None
    return Global("types", name, 0, 0, via="type helper") if name else None


def _locate(args: tuple[Value, ...]) -> Value | None:
    path = as_text(args[0]) if args else None
    if not path or "." not in path:
        return None
    mod, _, name = path.rpartition(".")
    return Global(mod, name, 0, 0, via="pydoc.locate")


def _one(fn: Callable[[bytes], bytes]) -> Callable[[tuple[Value, ...]], Value | None]:
    return lambda args: _bounded(fn(_bytes_arg(args[0]))) if args else None


def _bytes_ctor(args: tuple[Value, ...]) -> Value | None:
    if not args:
        return b""
    value = deref(args[0])
    if isinstance(value, PList) and len(value.items) <= MAX_DECODED:
        ints = [deref(v) for v in value.items]
        if all(isinstance(i, int) and 0 <= i < 256 for i in ints):
            return bytes(ints)  # type: ignore[arg-type]
    if isinstance(value, str) and len(args) > 1:
        enc = as_text(args[1])
        return value.encode(enc) if enc and enc.lower() in _TEXT_CODECS else None
    return value if isinstance(value, bytes) else None


_HANDLERS: dict[str, Callable[[tuple[Value, ...]], Value | None]] = {
    "builtins.getattr": lambda a: _getattr(deref(a[0]), a[1]) if len(a) >= 2 else None,
    "builtins.__import__": _import,
    "builtins.bytes": _bytes_ctor,
    "builtins.bytearray": _bytes_ctor,
    "builtins.str": lambda a: as_text(a[0]) if len(a) == 1 else None,
    "importlib.import_module": _import_module,
    "importlib.__import__": _import,
    "operator.getitem": _getitem,
    "operator.add": _concat,
    "operator.concat": _concat,
    "numpy._core._ufunc_reconstruct": _global_from_pair,
    "numpy._core._internal._ufunc_reconstruct": _global_from_pair,
    "dill._dill._load_type": _types_member,
    "dill._dill._get_attr": lambda a: _getattr(deref(a[0]), a[1]) if len(a) == 2 else None,
    "cloudpickle.cloudpickle._builtin_type": _types_member,
    "pydoc.locate": _locate,
    "base64.b64decode": _one(base64.b64decode),
    "base64.standard_b64decode": _one(base64.standard_b64decode),
    "base64.urlsafe_b64decode": _one(base64.urlsafe_b64decode),
    "base64.b32decode": _one(base64.b32decode),
    "base64.b16decode": _one(base64.b16decode),
    "base64.b85decode": _one(base64.b85decode),
    "base64.a85decode": _one(base64.a85decode),
    "base64.decodebytes": _one(base64.decodebytes),
    "binascii.unhexlify": _one(binascii.unhexlify),
    "binascii.a2b_hex": _one(binascii.a2b_hex),
    "binascii.a2b_base64": _one(binascii.a2b_base64),
    "bytes.fromhex": lambda a: bytes.fromhex(as_text(a[0]) or "") if a else None,
    "zlib.decompress": lambda a: _decompress(zlib.decompressobj, _bytes_arg(a[0])),
    "bz2.decompress": lambda a: _decompress(bz2.BZ2Decompressor, _bytes_arg(a[0])),
    "lzma.decompress": lambda a: _decompress(lzma.LZMADecompressor, _bytes_arg(a[0])),
    "gzip.decompress": lambda a: _decompress(lambda: zlib.decompressobj(47), _bytes_arg(a[0])),
    "codecs.decode": _codecs_decode,
    "codecs.encode": _codecs_encode,
}


# ------------------------------------------------------------------ joblib arrays
# joblib >= 0.10 writes an array's bytes in the stream right after its wrapper's BUILD.
JOBLIB_INLINE_WRAPPER = "joblib.numpy_pickle.NumpyArrayWrapper"
# joblib < 0.10 wrote each array to a side file next to the pickle, loaded at BUILD
# (joblib/numpy_pickle_compat.py): NDArrayWrapper with numpy.load(allow_pickle=True),
# ZNDArrayWrapper as zlib-compressed raw bytes. Today's joblib still loads both.
JOBLIB_SIDE_FILE_WRAPPERS = frozenset(
    f"joblib.{module}.{name}"
    for module in ("numpy_pickle", "numpy_pickle_compat")
    for name in ("NDArrayWrapper", "ZNDArrayWrapper")
)


def instance_class(obj: Value) -> str | None:
    """The class (normalised module path) an object was built from by ``Class(...)``,
    NEWOBJ or ``copyreg._reconstructor(Class, ...)``: ``sklearn.externals.joblib`` pickles
    name joblib's classes under that vendored path."""
    obj = deref(obj)
    if not isinstance(obj, Call):
        return None
    cls = deref(obj.func)
    if isinstance(cls, Global) and cls.qualname == "copyreg._reconstructor":
        args = deref(obj.args)
        cls = deref(args[0]) if isinstance(args, tuple) and args else None
    if not isinstance(cls, Global):
        return None
    return f"{normalise_module(cls.module)}.{cls.name}"


@dataclass(frozen=True)
class ArrayLayout:
    """How many raw bytes joblib writes after a NumpyArrayWrapper."""

    nbytes: int
    has_object: bool
    aligned: bool


_DTYPE_SIZES = {"b": 1, "i": 0, "u": 0, "f": 0, "c": 0, "m": 0, "M": 0, "S": 0, "U": 0, "V": 0}


def joblib_array_layout(state: Value) -> ArrayLayout | None:
    """Size of the array data that follows a joblib wrapper with this BUILD state."""
    state = deref(state)
    if not isinstance(state, PDict):
        return None
    shape = deref(state.get_str("shape"))
    dtype = _dtype_descr(state.get_str("dtype"))
    if not isinstance(shape, tuple) or dtype is None:
        return None
    count = 1
    for raw_dim in shape:
        dim = deref(raw_dim)
        if not isinstance(dim, int) or dim < 0:
            return None
        count *= dim
    kind, itemsize = dtype
    aligned = deref(state.get_str("numpy_array_alignment_bytes")) is not None
    return ArrayLayout(nbytes=count * itemsize, has_object=kind == "O", aligned=aligned)


def _dtype_descr(value: Value | None) -> tuple[str, int] | None:
    """(kind, itemsize) of a pickled ``numpy.dtype`` call and its BUILD state."""
    call = deref(value)
    if not isinstance(call, Call):
        return None
    args = deref(call.args)
    spec = as_text(args[0]) if isinstance(args, tuple) and args else None
    if not spec:
        return None
    kind = spec[0]
    if kind == "O":
        return "O", 8
    digits = spec[1:]
    size = int(digits) if digits.isdigit() else 0
    if kind == "U":
        size *= 4
    if kind == "b" and not digits:
        size = 1
    explicit = _dtype_state_size(call)
    if explicit is not None and explicit > 0:
        size = explicit
    return (kind, size) if size > 0 and kind in _DTYPE_SIZES else None


def _dtype_state_size(dtype_call: Call) -> int | None:
    # numpy pickles flexible dtypes' element size in the BUILD state tuple (index 5).
    state = deref(dtype_call.state)
    if isinstance(state, tuple) and len(state) >= 6:
        size = deref(state[5])
        return size if isinstance(size, int) else None
    return None
