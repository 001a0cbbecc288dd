"""Opcodes that only build data (constants, containers, memo) and the VM state they share.

``PickleVM`` (vm.py) adds the driver and the opcodes that import or call.
"""

from __future__ import annotations

import codecs
import struct

from mlgate.scan.pickle.program import Anomaly, LimitError, Program, StreamError, VMLimits
from mlgate.scan.pickle.values import Blob, Buffer, PDict, PList, PSet, Value
from mlgate.scan.reader import ByteReader

MAX_LINE = 1 << 16
BAD_UTF8 = "invalid UTF-8 in a unicode string"


class DataOps:
    """VM state plus the data opcodes; never imports or calls anything."""

    def __init__(self, reader: ByteReader, number: int, limits: VMLimits | None) -> None:
        self.r = reader
        self.limits = limits or VMLimits()
        self.prog = Program(number=number, start=reader.tell())
        self.stack: list[Value] = []
        self.marks: list[int] = []
        self.fence = 0  # stack items below the last MARK cannot be popped (C unpickler)
        # The memo as the C unpickler keeps it: an array indexed by memo key (8 bytes an
        # entry; a dict cost ~70). Keys beyond its end (a PUT skipping ahead) go to ``sparse``,
        # and move into the array when it reaches them, so a key lives in one place.
        self.memo: list[Value] = []
        self.sparse: dict[int, Value] = {}
        self.op_offset = 0
        self.prev_offset = 0
        self.index = 0  # number of the opcode being executed (1-based)
        # Containers, tuples and calls created: each costs ~100 bytes for one opcode byte, so
        # this (not the file size) bounds the emulator's memory. Checked by the driver loop.
        self.objects = 0

    def _anomaly(self, kind: str, message: str) -> None:
        self.prog.anomalies.append(Anomaly(kind, message, self.op_offset, self.index))

    def _pop(self) -> Value:
        stack = self.stack
        if len(stack) <= self.fence:
            raise StreamError("unpickling stack underflow")
        return stack.pop()

    def _top(self) -> Value:
        stack = self.stack
        if len(stack) <= self.fence:
            raise StreamError("unpickling stack underflow")
        return stack[-1]

    def _pop_mark(self) -> list[Value]:
        marks = self.marks
        if not marks:
            raise StreamError("could not find MARK")
        k = marks.pop()
        self.fence = marks[-1] if marks else 0
        stack = self.stack
        items = stack[k:]
        del stack[k:]
        return items

    def _u8(self) -> int:
        """One argument byte (inlined fast path: it follows most opcodes)."""
        r = self.r
        pos = r.pos
        if pos < len(r.buf):
            r.pos = pos + 1
            return r.buf[pos]
        return r.read(1)[0]

    def _line(self) -> bytes:
        line = self.r.readline(MAX_LINE)
        return line[:-1]

    def _blob(self, n: int, kind: str) -> Value:
        if n < 0:
            raise StreamError(f"negative {kind} size")
        if n <= self.limits.max_inline_bytes:
            return self.r.read(n)
        offset = self.r.tell()
        head = self.r.peek(4096)
        self.r.skip(n)
        return Blob(offset=offset, length=n, kind=kind, head=head)

    def _memo_get(self, idx: int) -> None:
        memo = self.memo
        if idx < len(memo):
            self.stack.append(memo[idx])
        elif idx in self.sparse:
            self.stack.append(self.sparse[idx])
        else:
            raise StreamError(f"Memo value not found at index {idx}")

    def _memo_put(self, idx: int) -> None:
        if idx < 0:
            raise StreamError("negative PUT argument")
        value = self._top()
        memo = self.memo
        if idx < len(memo):
            memo[idx] = value
        elif idx == len(memo):
            memo.append(value)
            self.sparse.pop(idx, None)
        else:
            self.sparse[idx] = value

    @property
    def memo_size(self) -> int:
        """Entries in the memo (MEMOIZE's next key, as the C unpickler's ``memo_len``)."""
        return len(self.memo) + len(self.sparse)

    # ------------------------------------------------------------------ opcodes
    def op_mark(self) -> bool:
        self.fence = len(self.stack)
        self.marks.append(self.fence)
        return False

    def op_pop(self) -> bool:
        marks = self.marks
        if marks and marks[-1] == len(self.stack):
            marks.pop()  # C unpickler: POP on an empty fence drops the mark
            self.fence = marks[-1] if marks else 0
        else:
            self._pop()
        return False

    def op_pop_mark(self) -> bool:
        self._pop_mark()
        return False

    def op_dup(self) -> bool:
        self.stack.append(self._top())
        return False

    def op_float(self) -> bool:
        text = self._line()
        try:
            self.stack.append(float(text))
        except ValueError:
            raise StreamError("could not convert string to float") from None
        return False

    def op_int(self) -> bool:
        text = self._line()
        if text == b"00":
            self.stack.append(False)
        elif text == b"01":
            self.stack.append(True)
        else:
            self.stack.append(_parse_int(text))
        return False

    def op_long(self) -> bool:
        text = self._line()
        self.stack.append(_parse_int(text[:-1] if text.endswith(b"L") else text))
        return False

    def op_binint(self) -> bool:
        self.stack.append(struct.unpack("<i", self.r.read(4))[0])
        return False

    def op_binint1(self) -> bool:
        self.stack.append(self._u8())
        return False

    def op_binint2(self) -> bool:
        self.stack.append(struct.unpack("<H", self.r.read(2))[0])
        return False

    def op_long1(self) -> bool:
        n = self._u8()
        self.stack.append(int.from_bytes(self.r.read(n), "little", signed=True))
        return False

    def op_long4(self) -> bool:
        n = struct.unpack("<i", self.r.read(4))[0]
        if n < 0:
            raise StreamError("LONG pickle has negative byte count")
        if n > 1 << 16:
            raise LimitError(f"LONG4 integer of {n} bytes")
        self.stack.append(int.from_bytes(self.r.read(n), "little", signed=True))
        return False

    def op_binfloat(self) -> bool:
        self.stack.append(struct.unpack(">d", self.r.read(8))[0])
        return False

    def op_none(self) -> bool:
        self.stack.append(None)
        return False

    def op_newtrue(self) -> bool:
        self.stack.append(True)
        return False

    def op_newfalse(self) -> bool:
        self.stack.append(False)
        return False

    def op_string(self) -> bool:
        line = self._line()
        if len(line) < 2 or line[0] != line[-1] or line[:1] not in (b"'", b'"'):
            raise StreamError("the STRING opcode argument must be quoted")
        try:
            data = codecs.escape_decode(line[1:-1])[0]
        except ValueError:  # the C unpickler raises too ("invalid \x escape")
            raise StreamError("invalid escape in a STRING argument") from None
        self.stack.append(_py2_string(data))
        return False

    def op_binstring(self) -> bool:
        n = struct.unpack("<i", self.r.read(4))[0]
        if n < 0:
            raise StreamError("BINSTRING pickle has negative byte count")
        value = self._blob(n, "bytes")
        self.stack.append(_py2_string(value) if isinstance(value, bytes) else value)
        return False

    def op_short_binstring(self) -> bool:
        self.stack.append(_py2_string(self.r.read(self._u8())))
        return False

    def op_unicode(self) -> bool:
        try:
            self.stack.append(self._line().decode("raw-unicode-escape"))
        except UnicodeDecodeError:  # a truncated \uXXXX escape: the loader raises too
            raise StreamError("invalid escape in a UNICODE argument") from None
        return False

    def _push_text(self, n: int) -> None:
        value = self._blob(n, "str")
        if isinstance(value, bytes):
            try:
                self.stack.append(value.decode("utf-8", "surrogatepass"))
            except UnicodeDecodeError:
                raise StreamError(BAD_UTF8) from None
        else:
            self.stack.append(value)

    def op_binunicode(self) -> bool:
        self._push_text(struct.unpack("<I", self.r.read(4))[0])
        return False

    def op_short_binunicode(self) -> bool:
        try:
            self.stack.append(self.r.read(self._u8()).decode("utf-8", "surrogatepass"))
        except UnicodeDecodeError:
            raise StreamError(BAD_UTF8) from None
        return False

    def op_binunicode8(self) -> bool:
        self._push_text(struct.unpack("<Q", self.r.read(8))[0])
        return False

    def op_binbytes(self) -> bool:
        self.stack.append(self._blob(struct.unpack("<I", self.r.read(4))[0], "bytes"))
        return False

    def op_short_binbytes(self) -> bool:
        self.stack.append(self.r.read(self._u8()))
        return False

    def op_binbytes8(self) -> bool:
        self.stack.append(self._blob(struct.unpack("<Q", self.r.read(8))[0], "bytes"))
        return False

    def op_bytearray8(self) -> bool:
        self.stack.append(self._blob(struct.unpack("<Q", self.r.read(8))[0], "bytearray"))
        return False

    def op_next_buffer(self) -> bool:
        self.stack.append(Buffer(index=self.index))
        return False

    def op_readonly_buffer(self) -> bool:
        top = self._top()
        if isinstance(top, Buffer):
            top.readonly = True
        return False

    def op_empty_tuple(self) -> bool:
        self.stack.append(())
        return False

    def op_tuple(self) -> bool:
        self.objects += 1
        self.stack.append(tuple(self._pop_mark()))
        return False

    def op_tuple1(self) -> bool:
        self.objects += 1
        self.stack.append((self._pop(),))
        return False

    def op_tuple2(self) -> bool:
        b = self._pop()
        a = self._pop()
        self.objects += 1
        self.stack.append((a, b))
        return False

    def op_tuple3(self) -> bool:
        c = self._pop()
        b = self._pop()
        a = self._pop()
        self.objects += 1
        self.stack.append((a, b, c))
        return False

    def op_empty_list(self) -> bool:
        self.objects += 1
        self.stack.append(PList())
        return False

    def op_list(self) -> bool:
        self.objects += 1
        self.stack.append(PList(self._pop_mark()))
        return False

    def op_empty_dict(self) -> bool:
        self.objects += 1
        self.stack.append(PDict())
        return False

    def op_dict(self) -> bool:
        items = self._pop_mark()
        if len(items) % 2:
            raise StreamError("odd number of items for DICT")
        self.objects += 1
        self.stack.append(PDict(list(zip(items[::2], items[1::2], strict=False))))
        return False

    def op_empty_set(self) -> bool:
        self.objects += 1
        self.stack.append(PSet())
        return False

    def op_frozenset(self) -> bool:
        self.objects += 1
        self.stack.append(PSet(self._pop_mark(), frozen=True))
        return False

    def op_get(self) -> bool:
        self._memo_get(_parse_int(self._line()))
        return False

    def op_binget(self) -> bool:
        self._memo_get(self._u8())
        return False

    def op_long_binget(self) -> bool:
        self._memo_get(struct.unpack("<I", self.r.read(4))[0])
        return False

    def op_put(self) -> bool:
        self._memo_put(_parse_int(self._line()))
        return False

    def op_binput(self) -> bool:
        self._memo_put(self._u8())
        return False

    def op_long_binput(self) -> bool:
        self._memo_put(struct.unpack("<I", self.r.read(4))[0])
        return False

    def op_memoize(self) -> bool:
        self._memo_put(self.memo_size)
        return False

    def _text_arg(self, what: str) -> str:
        try:
            return self._line().decode("utf-8")
        except UnicodeDecodeError:
            raise StreamError(f"{what} is not valid UTF-8") from None


def _parse_int(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise StreamError(f"invalid literal for int(): {text[:40]!r}") from None


def _py2_string(data: bytes) -> str | bytes:
    # Python 2 str: the default loader decodes with encoding="ASCII".
    try:
        return data.decode("ascii")
    except UnicodeDecodeError:
        return data
