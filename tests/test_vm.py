"""The emulator against CPython's own pickler: every data opcode of protocols 0-5."""

from __future__ import annotations

import io
import math
import pickle
import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mlgate.scan.pickle.program import Program
from mlgate.scan.pickle.values import Call, Global, PDict, PList, PSet, Value, deref
from mlgate.scan.pickle.vm import PickleVM
from mlgate.scan.reader import ByteReader


def emulate(data: bytes) -> Program:
    return PickleVM(ByteReader(io.BytesIO(data), 0, len(data))).run()


def to_python(v: Value) -> object:
    """Rebuild plain data from symbolic values (what the loader would return)."""
    v = deref(v)
    if isinstance(v, PList):
        return [to_python(x) for x in v.items]
    if isinstance(v, tuple):
        return tuple(to_python(x) for x in v)
    if isinstance(v, PDict):
        return {to_python(k): to_python(x) for k, x in v.items}
    if isinstance(v, PSet):
        items = {to_python(x) for x in v.items}
        return frozenset(items) if v.frozen else items
    if isinstance(v, Call):
        func = deref(v.func)
        assert isinstance(func, Global), v
        args = [to_python(a) for a in v.args]  # type: ignore[union-attr]
        if func.qualname == "builtins.set":
            return set(args[0]) if args else set()
        if func.qualname == "builtins.frozenset":
            return frozenset(args[0]) if args else frozenset()
        raise AssertionError(f"unexpected call {func.qualname}")
    if isinstance(v, bytearray):
        return bytes(v)
    return v


def normalise(obj: object) -> object:
    if isinstance(obj, bytearray):
        return bytes(obj)
    if isinstance(obj, list | tuple):
        return type(obj)(normalise(x) for x in obj)
    if isinstance(obj, dict):
        return {normalise(k): normalise(x) for k, x in obj.items()}
    return obj


scalars = (st.none() | st.booleans() | st.integers() | st.integers(-2**300, 2**300)
           | st.floats(allow_nan=False) | st.text(max_size=40) | st.binary(max_size=300)
           | st.binary(min_size=256, max_size=600))
hashables = st.recursive(scalars, lambda c: st.tuples(c, c) | st.frozensets(c, max_size=3),
                         max_leaves=6)
data = st.recursive(
    scalars | st.builds(bytearray, st.binary(max_size=20)),
    lambda c: (st.lists(c, max_size=5) | st.tuples(c) | st.tuples(c, c, c, c)
               | st.dictionaries(hashables, c, max_size=4) | st.sets(hashables, max_size=3)
               | st.frozensets(hashables, max_size=3)),
    max_leaves=20,
)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(obj=data, protocol=st.integers(0, 5))
def test_emulation_rebuilds_what_pickle_loads_returns(obj: object, protocol: int) -> None:
    blob = pickle.dumps(obj, protocol=protocol)
    prog = emulate(blob)
    assert prog.complete and prog.error is None, prog.error
    assert prog.end == len(blob)
    got = to_python(prog.result)
    expected = normalise(pickle.loads(blob))  # trusted: the test built these bytes itself
    assert _same(got, expected)


def _same(a: object, b: object) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return (a == b and type(a) is type(b)) or (isinstance(a, bytes) and a == b)


def test_shared_and_recursive_references() -> None:
    inner = [1, 2]
    outer: list[object] = [inner, inner]
    outer.append(outer)
    prog = emulate(pickle.dumps(outer, protocol=2))
    result = deref(prog.result)
    assert isinstance(result, PList)
    assert result.items[0] is result.items[1]
    assert result.items[2] is result


def test_out_of_band_buffers_are_recorded() -> None:
    buf = pickle.PickleBuffer(b"abc")
    blob = pickle.dumps(buf, protocol=5, buffer_callback=lambda b: False)
    prog = emulate(blob)
    assert prog.complete


@pytest.mark.parametrize(("stream", "error"), [
    (b"\x80\x06N.", "unsupported pickle protocol"),
    (b"0", "stack underflow"),
    (b"(0t.", "MARK"),
    (b"g7\n.", "Memo value not found"),
    (b"\x8c\x03ab", "truncated"),
    (b"\x93.", "underflow"),
    (b"K\x01K\x02\x93.", "STACK_GLOBAL requires str"),
    (b"(K\x01d.", "odd number of items for DICT"),
    (b"\xfe", "invalid load key"),
    (b"N)N\x81.", "NEWOBJ"),
])
def test_stream_errors_match_the_c_unpickler(stream: bytes, error: str) -> None:
    prog = emulate(stream)
    assert prog.error is not None and error in prog.error, prog.error
    with pytest.raises(Exception):
        pickle.loads(stream)


def test_frame_semantics_follow_the_c_unpickler() -> None:
    # The C unpickler only checks that a frame's bytes exist; an argument may cross its end.
    body = b"M\x01\x00K\x02\x86."
    blob = b"\x80\x04\x95" + struct.pack("<Q", 2) + body  # splits BININT2's argument
    assert pickle.loads(blob) == (1, 2)
    with pytest.raises(pickle.UnpicklingError, match="frame"):
        pickle._loads(blob)  # the pure-Python unpickler sees a different stream
    prog = emulate(blob)
    assert prog.complete and to_python(prog.result) == (1, 2)
    assert [a.kind for a in prog.anomalies] == ["frame"]


def test_frame_ending_between_reads_is_not_an_anomaly() -> None:
    blob = b"\x80\x04\x95" + struct.pack("<Q", 1) + b"K\x01K\x02\x86."
    assert pickle._loads(blob) == (1, 2)
    assert not emulate(blob).anomalies


def test_frame_longer_than_the_file_fails_at_the_frame() -> None:
    blob = b"\x80\x04\x95" + struct.pack("<Q", 1000) + b"N."
    prog = emulate(blob)
    assert prog.error is not None and "truncated" in prog.error


class _Unseekable(io.RawIOBase):
    """A stream read in odd-sized pieces that cannot seek: the reader refills its buffer."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(b), 7919))
        b[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("protocol", [2, 4])
def test_inlined_opcodes_across_buffer_refills(protocol: int) -> None:
    # The hot opcodes run inline only when their argument is in the buffer: strings, memo
    # keys and small ints straddling the stream's many short reads must read the same.
    obj = [{"k": f"v{i}", f"s{i % 300}": i % 256, "t": None} for i in range(60_000)]
    blob = pickle.dumps(obj, protocol=protocol)
    assert len(blob) > 1 << 20
    prog = PickleVM(ByteReader(_Unseekable(blob), 0, None)).run()
    assert prog.complete, prog.error
    assert to_python(prog.result) == obj
