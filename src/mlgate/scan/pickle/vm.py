"""Symbolic emulation of the pickle virtual machine, as CPython's C unpickler runs it.

Nothing is imported or called: GLOBAL pushes a :class:`Global` naming what the loader would
import, and every call the loader would make becomes a :class:`Call` record, kept even when
the stream fails later (the real loader has already run it by then).

Framing follows the C unpickler (``_pickle.c``), which only checks that a FRAME's declared
bytes exist and then keeps reading linearly. The pure-Python unpickler enforces frame
boundaries instead, so any disagreement is recorded as a frame anomaly: two loaders would
see two different programs.
"""

from __future__ import annotations

import _compat_pickle
import gc
import lzma
import struct
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.pickle import gadgets
from mlgate.scan.pickle.data_ops import BAD_UTF8, DataOps
from mlgate.scan.pickle.program import (
    LimitError,
    NotFollowedError,
    Program,
    StreamError,
    VMLimits,
)
from mlgate.scan.pickle.values import (
    Attr,
    Call,
    Global,
    PDict,
    Persistent,
    PList,
    PSet,
    Value,
    deref,
)
from mlgate.scan.reader import ByteReader, TruncatedError

HIGHEST_PROTOCOL = 5
NO_FRAME = 1 << 127  # frame_end when no frame is open (compares above any offset)
OBJECT_BYTES = 8  # bytes of a stream of known size that allow one more container or call
MEMO_SLACK = 4096  # memo entries allowed beyond the one-per-two-bytes density


Handler = Callable[[], bool]


class PickleVM(DataOps):
    """Emulates one pickle from the reader's current position to its STOP."""

    def __init__(
        self,
        reader: ByteReader,
        number: int = 1,
        limits: VMLimits | None = None,
        joblib: bool = True,
    ) -> None:
        super().__init__(reader, number, limits)
        self.joblib = joblib
        self.frame_end = NO_FRAME
        # Each opcode takes at least one byte, so a stream of known size can legitimately run
        # as many opcodes as it has bytes (an honest 90 MB pickle of dicts of strings runs
        # 24 M): it is capped by its size, or by the limit if that is higher. A stream of
        # unknown size (decompressed on the fly, where a 60 KB gzip file holds 60 M one-byte
        # opcodes) gets the limit alone. Containers and calls (~100 bytes of memory each) scale
        # the same way, at one per OBJECT_BYTES bytes: a list of one-key dicts of small ints
        # takes 8 bytes a dict.
        size = reader.remaining_known()
        limits = self.limits
        self.max_opcodes = limits.max_opcodes if size is None else max(limits.max_opcodes, size)
        self.max_objects = (
            limits.max_objects if size is None else max(limits.max_objects, size // OBJECT_BYTES)
        )
        self.table = self._build_table()

    # ------------------------------------------------------------------ driver
    def run(self) -> Program:
        """Emulate until STOP, a stream error or a limit; never raises for bad input."""
        prog = self.prog
        try:
            with _no_cyclic_gc():
                self._loop()
        except StreamError as e:
            prog.error, prog.error_offset = str(e), self.op_offset
        except TruncatedError as e:
            prog.error, prog.error_offset = f"pickle data was truncated ({e})", self.op_offset
        except LimitError as e:
            prog.limit = str(e)
            prog.error_offset = self.op_offset
        except RecursionError:
            prog.limit = "nesting too deep"
        except ResourceLimitError as e:
            prog.limit = str(e)
            prog.error_offset = self.op_offset
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            prog.error, prog.error_offset = f"stream could not be read: {e}", self.op_offset
        except NotFollowedError as e:
            prog.failure, prog.error_offset = str(e), self.op_offset
        except Exception as e:
            # Fail closed without losing the calls recorded so far: the real loader has run
            # them before reaching whatever the emulator could not follow.
            prog.failure = f"internal error of the emulator ({type(e).__name__}: {e})"
            prog.error_offset = self.op_offset
        prog.opcodes = self.index
        return prog

    def _loop(self) -> None:  # noqa: PLR0915 - one frame: a call per opcode is the cost
        # Hot path: one iteration per opcode. The read position, the buffer and the frame end
        # live in locals, synchronised with the reader only around table handlers; and the
        # opcodes that make up most of an honest data pickle (strings, memo, marks, small ints)
        # run inline when their argument is in the buffer, as a method call per opcode costs
        # more than they do. Every other case goes through the table.
        r = self.r
        table = self.table
        stack = self.stack
        push = stack.append
        memo = self.memo
        sparse = self.sparse
        marks = self.marks
        count = 0
        base, pos, buf = r.base, r.pos, r.buf
        blen = len(buf)
        frame_end = self.frame_end
        offset = base + pos
        try:
            while True:
                prev = offset
                offset = base + pos
                if pos < blen:
                    op = buf[pos]
                    pos += 1
                else:
                    r.pos = pos
                    op = r.read_byte()
                    if op < 0:
                        raise TruncatedError("stream ended before STOP")
                    base, pos, buf = r.base, r.pos, r.buf
                    blen = len(buf)
                count += 1
                if offset >= frame_end:
                    self.op_offset = offset
                    self.index = count
                    self._leave_frame(prev)
                    frame_end = self.frame_end
                if not count & 0xFFFF:
                    self.op_offset = offset
                    self.index = count
                    self._checkpoint(count)
                if op == 0x94 and not sparse and len(stack) > self.fence:  # MEMOIZE
                    memo.append(stack[-1])
                elif op == 0x8C and pos < blen and pos + 1 + buf[pos] <= blen:
                    end = pos + 1 + buf[pos]  # SHORT_BINUNICODE
                    try:
                        push(buf[pos + 1 : end].decode("utf-8", "surrogatepass"))
                    except UnicodeDecodeError:
                        raise StreamError(BAD_UTF8) from None
                    pos = end
                elif op == 0x68 and pos < blen and buf[pos] < len(memo):  # BINGET
                    push(memo[buf[pos]])
                    pos += 1
                elif op == 0x28:  # MARK
                    self.fence = len(stack)
                    marks.append(self.fence)
                elif op == 0x4E:  # NONE
                    push(None)
                elif op == 0x30 and len(stack) > self.fence:  # POP (not of an empty mark)
                    stack.pop()
                elif op == 0x4B and pos < blen:  # BININT1
                    push(buf[pos])
                    pos += 1
                else:
                    handler = table[op]
                    if handler is None:
                        raise StreamError(f"invalid load key {op:#04x}")
                    self.op_offset = offset
                    self.index = count
                    r.pos = pos
                    if handler():
                        self._check_frame_at_stop()
                        return
                    base, pos, buf = r.base, r.pos, r.buf
                    blen = len(buf)
                    frame_end = self.frame_end
        finally:
            # Where the emulation stopped, for findings and errors.
            self.op_offset = offset
            self.index = count

    def _checkpoint(self, count: int) -> None:
        """Limits checked every 65536 opcodes (cheap enough, and fine-grained enough)."""
        limits = self.limits
        if count > self.max_opcodes:
            raise LimitError(f"more than {self.max_opcodes} opcodes")
        if self.objects > self.max_objects:
            raise LimitError(f"more than {self.max_objects} containers and calls")
        # A pickler memoizes each object once, after at least one byte that builds it, and
        # the memoizing opcode takes one byte more: an honest memo never holds more entries
        # than half the bytes read. Memoizing the same value over and over (one byte an
        # entry) is memory growth without data: stop it before it costs a gigabyte.
        read = self.op_offset - self.prog.start
        if self.memo_size > read // 2 + MEMO_SLACK:
            raise LimitError(
                f"the memo holds {self.memo_size} entries after {read} bytes, more than one "
                "per two bytes: no pickler writes this"
            )
        if limits.deadline is not None and time.monotonic() > limits.deadline:
            raise LimitError("time budget exhausted")

    # ------------------------------------------------------------------ helpers
    def _leave_frame(self, prev_offset: int) -> None:
        end = self.frame_end
        # The pure-Python unpickler accepts a frame ending between two reads (for instance
        # right after an opcode byte) and rejects a read that the frame end splits.
        if self.op_offset > end and end != prev_offset + 1:
            self._anomaly(
                "frame",
                f"an opcode argument crosses the end of the frame at offset {self.frame_end}; "
                "the pure-Python unpickler rejects this stream, the C unpickler runs it",
            )
        self.frame_end = NO_FRAME

    def _check_frame_at_stop(self) -> None:
        end = self.frame_end
        here = self.r.tell()
        if end not in (NO_FRAME, here):
            self._anomaly(
                "frame",
                f"STOP at offset {here - 1} inside a frame that declares {end - here} more "
                "bytes; data hidden after STOP inside the frame",
            )

    def _record_call(self, func: Value, args: Value, kwargs: Value, kind: str) -> Call:
        call = Call(
            func=func,
            args=args,
            kwargs=kwargs,
            kind=kind,
            index=self.index,
            offset=self.op_offset,
            pickle_no=self.prog.number,
        )
        self.prog.calls.append(call)
        self.objects += 1
        call.resolved = gadgets.evaluate(call)
        return call

    def _global(self, module: str, name: str, via: str) -> Global:
        if self.prog.protocol < 3:
            # fix_imports: the loader maps Python 2 names (e.g. commands -> subprocess).
            key = (module, name)
            if key in _compat_pickle.NAME_MAPPING:
                module, name = _compat_pickle.NAME_MAPPING[key]
            elif module in _compat_pickle.IMPORT_MAPPING:
                module = _compat_pickle.IMPORT_MAPPING[module]
        g = Global(module=module, name=name, index=self.index, offset=self.op_offset, via=via)
        self.prog.globals.append(g)
        return g

    def _build_table(self) -> list[Handler | None]:
        t: list[Handler | None] = [None] * 256
        ops: dict[bytes, Handler] = {
            b"(": self.op_mark,
            b".": self.op_stop,
            b"0": self.op_pop,
            b"1": self.op_pop_mark,
            b"2": self.op_dup,
            b"F": self.op_float,
            b"I": self.op_int,
            b"J": self.op_binint,
            b"K": self.op_binint1,
            b"L": self.op_long,
            b"M": self.op_binint2,
            b"N": self.op_none,
            b"P": self.op_persid,
            b"Q": self.op_binpersid,
            b"R": self.op_reduce,
            b"S": self.op_string,
            b"T": self.op_binstring,
            b"U": self.op_short_binstring,
            b"V": self.op_unicode,
            b"X": self.op_binunicode,
            b"a": self.op_append,
            b"b": self.op_build,
            b"c": self.op_global,
            b"d": self.op_dict,
            b"}": self.op_empty_dict,
            b"e": self.op_appends,
            b"g": self.op_get,
            b"h": self.op_binget,
            b"i": self.op_inst,
            b"j": self.op_long_binget,
            b"l": self.op_list,
            b"]": self.op_empty_list,
            b"o": self.op_obj,
            b"p": self.op_put,
            b"q": self.op_binput,
            b"r": self.op_long_binput,
            b"s": self.op_setitem,
            b"t": self.op_tuple,
            b")": self.op_empty_tuple,
            b"u": self.op_setitems,
            b"G": self.op_binfloat,
            b"\x80": self.op_proto,
            b"\x81": self.op_newobj,
            b"\x82": self.op_ext1,
            b"\x83": self.op_ext2,
            b"\x84": self.op_ext4,
            b"\x85": self.op_tuple1,
            b"\x86": self.op_tuple2,
            b"\x87": self.op_tuple3,
            b"\x88": self.op_newtrue,
            b"\x89": self.op_newfalse,
            b"\x8a": self.op_long1,
            b"\x8b": self.op_long4,
            b"B": self.op_binbytes,
            b"C": self.op_short_binbytes,
            b"\x8c": self.op_short_binunicode,
            b"\x8d": self.op_binunicode8,
            b"\x8e": self.op_binbytes8,
            b"\x8f": self.op_empty_set,
            b"\x90": self.op_additems,
            b"\x91": self.op_frozenset,
            b"\x92": self.op_newobj_ex,
            b"\x93": self.op_stack_global,
            b"\x94": self.op_memoize,
            b"\x95": self.op_frame,
            b"\x96": self.op_bytearray8,
            b"\x97": self.op_next_buffer,
            b"\x98": self.op_readonly_buffer,
        }
        for key, handler in ops.items():
            t[key[0]] = handler
        return t

    def op_stop(self) -> bool:
        self.prog.result = self._pop()
        self.prog.end = self.r.tell()
        return True

    def _extend(self, target: Value, items: list[Value], method: str) -> None:
        if (isinstance(target, PList) and method in ("append", "extend")) or (
            isinstance(target, PSet) and method == "add" and not target.frozen
        ):
            target.items.extend(items)
        else:
            # The loader calls target.append/extend/add: a method of an arbitrary object.
            self._record_call(Attr(target, method), tuple(items), None, method.upper())

    def op_append(self) -> bool:
        value = self._pop()
        self._extend(self._top(), [value], "append")
        return False

    def op_appends(self) -> bool:
        items = self._pop_mark()
        self._extend(self._top(), items, "extend")
        return False

    def op_additems(self) -> bool:
        items = self._pop_mark()
        self._extend(self._top(), items, "add")
        return False

    def _set_items(self, target: Value, pairs: list[tuple[Value, Value]]) -> None:
        if isinstance(target, PDict):
            target.items.extend(pairs)
        else:
            for k, v in pairs:
                self._record_call(Attr(target, "__setitem__"), (k, v), None, "SETITEM")

    def op_setitem(self) -> bool:
        value = self._pop()
        key = self._pop()
        self._set_items(self._top(), [(key, value)])
        return False

    def op_setitems(self) -> bool:
        items = self._pop_mark()
        if len(items) % 2:
            raise StreamError("odd number of items for SETITEMS")
        self._set_items(self._top(), list(zip(items[::2], items[1::2], strict=False)))
        return False

    def op_global(self) -> bool:
        module = self._text_arg("GLOBAL module name")
        name = self._text_arg("GLOBAL name")
        self.stack.append(self._global(module, name, "GLOBAL"))
        return False

    def op_stack_global(self) -> bool:
        name = deref(self._pop())
        module = deref(self._pop())
        if isinstance(module, str) and isinstance(name, str):
            self.stack.append(self._global(module, name, "STACK_GLOBAL"))
        elif isinstance(module, Call | Attr) or isinstance(name, Call | Attr):
            # A name computed at load time: the loader would import whatever it becomes.
            self.stack.append(self._global("<computed>", "<computed>", "STACK_GLOBAL"))
        else:
            raise StreamError("STACK_GLOBAL requires str")
        return False

    def op_inst(self) -> bool:
        module = self._text_arg("INST module name")
        name = self._text_arg("INST name")
        args = tuple(self._pop_mark())
        cls = self._global(module, name, "INST")
        self.stack.append(self._record_call(cls, args, None, "INST"))
        return False

    def op_obj(self) -> bool:
        items = self._pop_mark()
        if not items:
            raise StreamError("unpickling stack underflow")
        self.stack.append(self._record_call(items[0], tuple(items[1:]), None, "OBJ"))
        return False

    def op_reduce(self) -> bool:
        args = self._pop()
        func = self._pop()
        if isinstance(deref(args), PList | PDict | PSet | str | int | float | bytes):
            raise StreamError("argument list must be a tuple")
        self.stack.append(self._record_call(func, args, None, "REDUCE"))
        return False

    def op_newobj(self) -> bool:
        args = self._pop()
        cls = self._pop()
        if not isinstance(args, tuple | Call):
            raise StreamError("NEWOBJ expected an arg tuple")
        self.stack.append(self._record_call(cls, args, None, "NEWOBJ"))
        return False

    def op_newobj_ex(self) -> bool:
        kwargs = self._pop()
        args = self._pop()
        cls = self._pop()
        self.stack.append(self._record_call(cls, args, kwargs, "NEWOBJ_EX"))
        return False

    def op_build(self) -> bool:
        state = self._pop()
        obj = self._top()
        self._record_call(Attr(obj, "__setstate__"), (state,), None, "BUILD")
        if isinstance(obj, Call):
            obj.state = state
        if self.joblib and gadgets.instance_class(obj) == gadgets.JOBLIB_INLINE_WRAPPER:
            self._read_joblib_array(state)
        return False

    def op_persid(self) -> bool:
        try:
            pid = self._line().decode("ascii")
        except UnicodeDecodeError:
            raise StreamError("persistent IDs in protocol 0 must be ASCII strings") from None
        self.stack.append(Persistent(pid=pid, index=self.index))
        return False

    def op_binpersid(self) -> bool:
        self.stack.append(Persistent(pid=self._pop(), index=self.index))
        return False

    def _ext(self, code: int) -> None:
        if code <= 0:
            raise StreamError("EXT specifies code <= 0")
        self._anomaly("extension", f"extension registry code {code}")
        self.stack.append(self._global("<copyreg extension>", str(code), "EXT"))

    def op_ext1(self) -> bool:
        self._ext(self.r.read(1)[0])
        return False

    def op_ext2(self) -> bool:
        self._ext(struct.unpack("<H", self.r.read(2))[0])
        return False

    def op_ext4(self) -> bool:
        self._ext(struct.unpack("<i", self.r.read(4))[0])
        return False

    def op_proto(self) -> bool:
        proto = self.r.read(1)[0]
        if proto > HIGHEST_PROTOCOL:
            raise StreamError(f"unsupported pickle protocol: {proto}")
        self.prog.protocol = proto
        return False

    def op_frame(self) -> bool:
        size = struct.unpack("<Q", self.r.read(8))[0]
        start = self.r.tell()
        if start - 9 < self.frame_end != NO_FRAME:
            self._anomaly("frame", "a FRAME starts before the previous frame's declared end")
        left = self.r.remaining_known()
        if left is not None and size > left:
            raise TruncatedError(f"FRAME declares {size} bytes, {left} remain")
        self.frame_end = start + size
        return False

    # ------------------------------------------------------------------ joblib
    def _read_joblib_array(self, state: Value) -> None:
        """Consume the raw array bytes joblib's NumpyUnpickler reads after a wrapper's BUILD."""
        layout = gadgets.joblib_array_layout(state)
        if layout is None:
            # joblib reads some number of raw bytes here; without it the rest of the stream
            # cannot be followed (it must not be read as opcodes and called complete).
            raise NotFollowedError(
                "a joblib array wrapper whose size mlgate cannot compute; the array bytes "
                "and everything after them were not analysed"
            )
        data_offset = None
        if layout.has_object:
            # joblib calls pickle.load on the same stream: a whole nested pickle follows.
            nested = PickleVM(self.r, number=self.prog.number, limits=self.limits, joblib=True)
            sub = nested.run()
            self.prog.nested.append(sub)
            if not sub.complete:
                raise StreamError("nested object-array pickle is invalid")
        else:
            self.prog.joblib_arrays += 1
            if layout.aligned:
                pad = self.r.read(1)[0]
                self.r.skip(pad)
            data_offset = self.r.tell()
            self.r.skip(layout.nbytes)
        wrapper = self.stack[-1]
        self.stack[-1] = Persistent("<joblib array>", self.index, wrapper, data_offset)
        self.frame_end = NO_FRAME


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cycle collector while emulating: the VM allocates millions of small values
    and keeps them all, so each collection rescans everything for nothing (half the time
    on an honest 90 MB pickle). Values stay collectable once the collector resumes."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
