"""Bounded decompression streams: bombs hit a limit instead of exhausting memory or disk."""

from __future__ import annotations

import bz2
import io
import lzma
import sys
import zlib
from collections.abc import Callable
from typing import BinaryIO, Protocol, TypeAlias

import lz4.frame

from mlgate.scan.limits import ResourceLimitError

if sys.version_info >= (3, 14):
    from compression import zstd
else:
    from backports import zstd

_CHUNK = 1 << 18
# Charged with every decompressed chunk; raises ResourceLimitError when a budget is spent.
Meter = Callable[[int], None]
# Told when the stream ends before its end marker (a truncated or cut-short file).
OnTruncated = Callable[[], None]


class _Decompressor(Protocol):
    """Feed compressed input, drain bounded output."""

    def feed(self, data: bytes) -> None: ...

    def drain(self, n: int) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def needs_input(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...


class DecompressingReader(io.RawIOBase):
    """Streams the decompressed content of ``inner``, refusing to expand past the limits.

    ``max_total`` caps the output; ``max_ratio`` caps output/input once the output passes
    ``ratio_floor`` bytes (small files may legitimately compress very well). ``meter`` charges
    the output to the scan's budget (its deadline and totals over all streams), so whoever
    reads the stream - handler, CRC pass, spooling - stops when the budget is spent.
    """

    def __init__(
        self,
        inner: BinaryIO,
        make: Callable[[], _Decompressor],
        max_total: int,
        max_ratio: int,
        ratio_floor: int,
        multi_stream: bool = False,
        meter: Meter | None = None,
        on_truncated: OnTruncated | None = None,
    ) -> None:
        super().__init__()
        self._inner = inner
        self._make = make
        self._dec = make()
        self._max_total = max_total
        self._max_ratio = max_ratio
        self._floor = ratio_floor
        self._multi = multi_stream
        self._meter = meter
        self._on_truncated = on_truncated
        self._in = 0
        self._out = 0
        self._done = False
        self._eof_reported = False

    def readable(self) -> bool:
        return True

    def readinto(self, b: memoryview) -> int:  # type: ignore[override]
        data = self._produce(len(b))
        b[: len(data)] = data
        return len(data)

    def _produce(self, n: int) -> bytes:
        while not self._done:
            out = self._dec.drain(n)
            if out:
                self._account(len(out))
                return out
            if self._dec.eof:
                rest = self._dec.unused_data if self._multi else b""
                if self._multi and not rest:
                    rest = self._read_chunk()
                if not rest:
                    self._done = True
                    break
                self._next_member()
                self._dec.feed(rest)
            elif self._dec.needs_input:
                chunk = self._read_chunk()
                if not chunk:
                    return self._truncated()
                self._dec.feed(chunk)
        return b""

    def _next_member(self) -> None:
        # Next member of a multi-member gzip/bz2/xz file, or next zstd/lz4 frame. Empty
        # members inflate nothing, so charge each to the meter: a file of millions of empty
        # (e.g. zstd skippable) frames still ends at the file's deadline.
        if self._meter is not None:
            self._meter(0)
        self._dec = self._make()

    def _truncated(self) -> bytes:
        # Report EOF once so buffered readers keep the bytes decoded so far; raise on the
        # next read, so a consumer that needs more learns the stream is damaged.
        if self._eof_reported:
            raise EOFError("compressed stream ended before its end marker (truncated)")
        self._eof_reported = True
        if self._on_truncated is not None:
            self._on_truncated()
        return b""

    def _read_chunk(self) -> bytes:
        chunk = self._inner.read(_CHUNK)
        self._in += len(chunk)
        return chunk

    def _account(self, n: int) -> None:
        self._out += n
        if self._meter is not None:
            self._meter(n)
        check_expansion(self._out, self._in, self._max_total, self._max_ratio, self._floor)

    def close(self) -> None:
        self._inner.close()
        super().close()


def check_expansion(out: int, given: int, max_total: int, max_ratio: int, floor: int) -> None:
    """Raise when ``out`` bytes decompressed from ``given`` exceed the size or ratio limits."""
    if out > max_total:
        raise ResourceLimitError(
            f"decompressed size exceeds {max_total} bytes (decompression bomb?)"
        )
    if out > floor and out > max_ratio * max(given, 1):
        raise ResourceLimitError(f"compression ratio above {max_ratio}:1 (decompression bomb?)")


class _ZlibAdapter:
    """zlib.decompressobj behind the feed/drain interface."""

    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)
        self._tail = b""
        self._dry = True

    def feed(self, data: bytes) -> None:
        self._tail = data
        self._dry = False

    def drain(self, n: int) -> bytes:
        out = self._d.decompress(self._tail, n)
        self._tail = self._d.unconsumed_tail
        self._dry = not out and not self._tail
        return out

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._dry

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


_Incremental: TypeAlias = (
    bz2.BZ2Decompressor
    | lzma.LZMADecompressor
    | lz4.frame.LZ4FrameDecompressor
    | zstd.ZstdDecompressor
)


class _IncrementalAdapter:
    """bz2/lzma/lz4/zstd decompressors, which buffer their input themselves."""

    def __init__(self, dec: _Incremental) -> None:
        self._d = dec
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf = data

    def drain(self, n: int) -> bytes:
        if self._d.eof or (self._d.needs_input and not self._buf):
            return b""
        # lz4.frame reports corrupt frames as RuntimeError, zstd as ZstdError (an Exception).
        try:
            out = self._d.decompress(self._buf, n)
        except (RuntimeError, zstd.ZstdError) as e:
            raise OSError(f"corrupt compressed stream: {e}") from e
        self._buf = b""
        return out

    @property
    def eof(self) -> bool:
        return self._d.eof

    @property
    def needs_input(self) -> bool:
        return self._d.needs_input and not self._buf

    @property
    def unused_data(self) -> bytes:
        return self._d.unused_data


# A zstd frame declares its window (up to 2 GiB) and the decoder allocates it up front: keep
# zstd's own default cap (2**27, 128 MiB) so a header cannot claim more memory; a frame
# asking for more is refused as corrupt. RFC 8878 section 3.1.1.1.2 asks decoders for 8 MiB.
_ZSTD_WINDOW_LOG = 27


def _zstd_decompressor() -> zstd.ZstdDecompressor:
    return zstd.ZstdDecompressor(
        options={zstd.DecompressionParameter.window_log_max: _ZSTD_WINDOW_LOG}
    )


CODECS: dict[str, tuple[Callable[[], _Decompressor], bool]] = {
    "zlib": (lambda: _ZlibAdapter(zlib.MAX_WBITS), False),
    "deflate": (lambda: _ZlibAdapter(-zlib.MAX_WBITS), False),
    "gzip": (lambda: _ZlibAdapter(16 + zlib.MAX_WBITS), True),
    "bz2": (lambda: _IncrementalAdapter(bz2.BZ2Decompressor()), True),
    "xz": (lambda: _IncrementalAdapter(lzma.LZMADecompressor(lzma.FORMAT_XZ)), True),
    "lzma": (lambda: _IncrementalAdapter(lzma.LZMADecompressor(lzma.FORMAT_ALONE)), False),
    "lz4": (lambda: _IncrementalAdapter(lz4.frame.LZ4FrameDecompressor()), True),
    "zstd": (lambda: _IncrementalAdapter(_zstd_decompressor()), True),
}


def decompressing(
    inner: BinaryIO,
    codec: str,
    max_total: int,
    max_ratio: int,
    ratio_floor: int,
    meter: Meter | None = None,
    on_truncated: OnTruncated | None = None,
) -> BinaryIO:
    """A buffered reader of ``inner`` decompressed with ``codec`` (a key of CODECS)."""
    make, multi = CODECS[codec]
    raw = DecompressingReader(
        inner, make, max_total, max_ratio, ratio_floor, multi, meter, on_truncated
    )
    return io.BufferedReader(raw, buffer_size=1 << 20)
