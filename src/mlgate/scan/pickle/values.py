"""Symbolic values the pickle emulator pushes on its stack.

Constants are plain Python values (str, bytes, int, float, bool, None, tuples of values).
Mutable containers use the small classes below so that unhashable symbolic keys and shared
references behave as in the real unpickler without ever creating a real object.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union


class Mark:
    """The MARK sentinel."""

    __slots__ = ()


MARK = Mark()


@dataclass(eq=False, slots=True)
class Global:
    """A global the loader would import (``module.name``); ``via`` says how it was reached."""

    module: str
    name: str
    index: int
    offset: int
    via: str = "GLOBAL"

    @property
    def qualname(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(eq=False, slots=True)
class ModuleRef:
    """A module object obtained at load time (``importlib.import_module('os')``...)."""

    name: str


@dataclass(eq=False, slots=True)
class Blob:
    """A large bytes/str argument kept on disk: only its position and first bytes are held."""

    offset: int
    length: int
    kind: str  # "bytes", "bytearray" or "str"
    head: bytes


@dataclass(eq=False, slots=True)
class Call:
    """A call the loader makes; the Call is also the value it returns.

    ``kind`` is the opcode that triggers it (REDUCE, NEWOBJ, NEWOBJ_EX, OBJ, INST, BUILD).
    ``resolved`` holds what the call evaluates to when mlgate can compute it without running
    anything (a decoded string, the global reached by ``getattr``...).
    """

    func: Value
    args: Value
    kwargs: Value
    kind: str
    index: int
    offset: int
    resolved: Value | None = None
    pickle_no: int = 0
    state: Value = None  # the last BUILD state applied to the object this call returned


@dataclass(eq=False, slots=True)
class Persistent:
    """An object the loader's ``persistent_load`` supplies (PyTorch storages...)."""

    pid: Value
    index: int
    # joblib arrays only: the NumpyArrayWrapper it replaces and where its raw bytes start.
    wrapper: Value = None
    data_offset: int | None = None


@dataclass(eq=False, slots=True)
class Buffer:
    """An out-of-band buffer (protocol 5 NEXT_BUFFER)."""

    index: int
    readonly: bool = False


@dataclass(eq=False, slots=True)
class PDict:
    """A dict built by the stream, as ordered (key, value) pairs."""

    items: list[tuple[Value, Value]] = field(default_factory=list)

    def get_str(self, key: str) -> Value | None:
        for k, v in self.items:
            if k == key and isinstance(k, str):
                return v
        return None


@dataclass(eq=False, slots=True)
class PList:
    items: list[Value] = field(default_factory=list)


@dataclass(eq=False, slots=True)
class PSet:
    items: list[Value] = field(default_factory=list)
    frozen: bool = False


@dataclass(eq=False, slots=True)
class AttrGetter:
    """``operator.attrgetter(name)`` result."""

    names: tuple[Value, ...]


@dataclass(eq=False, slots=True)
class MethodCaller:
    """``operator.methodcaller(name, *args)`` result."""

    name: Value
    args: tuple[Value, ...]


@dataclass(eq=False, slots=True)
class Partial:
    """``functools.partial(func, *args)`` result."""

    func: Value
    args: tuple[Value, ...]


@dataclass(eq=False, slots=True)
class Attr:
    """``getattr(obj, name)`` where ``obj`` is not a global or module mlgate can name."""

    obj: Value
    name: Value


Value = Union[  # noqa: UP007 - recursive alias needs the string-free form under mypy
    None,
    bool,
    int,
    float,
    str,
    bytes,
    tuple["Value", ...],
    Mark,
    Global,
    ModuleRef,
    Blob,
    Call,
    Persistent,
    Buffer,
    PDict,
    PList,
    PSet,
    AttrGetter,
    MethodCaller,
    Partial,
    Attr,
]


def deref(value: Value) -> Value:
    """Follow calls whose result mlgate computed, to the value they evaluate to."""
    seen = 0
    while isinstance(value, Call) and value.resolved is not None and seen < 64:
        value = value.resolved
        seen += 1
    return value


def as_text(value: Value) -> str | None:
    """The constant string a value evaluates to, if it is one."""
    value = deref(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    return None
