"""Compressed joblib files (``joblib.dump(obj, f, compress=...)``), recognised by content.

The compressed stream is decompressed, never executed, into a temporary file in a scratch
folder (next to the destination), bounded in size and ratio by the scanner's limits and by
the free space of that folder; the uncompressed joblib file is then read like any other.
"""

from __future__ import annotations

import contextlib
import lzma
import os
import shutil
import tempfile
import zlib
from pathlib import Path
from typing import BinaryIO

from mlgate.convert.errors import ConversionError
from mlgate.scan.limits import Limits, ResourceLimitError
from mlgate.scan.streams import decompressing

# joblib's compressor prefixes (joblib/compressor.py), checked in this order. "ZF" is the
# zlib container of joblib < 0.9.3: "ZF", the length in hex padded to 19 bytes, zlib data.
PREFIXES: tuple[tuple[bytes, str], ...] = (
    (b"ZF", "zf"),
    (b"\x78", "zlib"),
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x5d\x00\x00", "lzma"),
    (b"\x04\x22\x4d\x18", "lz4"),
)
_ZF_LENGTH = 19  # len(hex(2**64)) in joblib.numpy_pickle_compat
_DISK_MARGIN = 64 << 20  # left free in the scratch folder
_STEP = 1 << 20
_DECODE_ERRORS = (zlib.error, lzma.LZMAError, OSError, RuntimeError, ValueError)


def compression_of(head: bytes) -> str | None:
    """The joblib compressor whose container ``head`` starts, or None."""
    for prefix, codec in PREFIXES:
        if head.startswith(prefix):
            return codec
    return None


def decompress(path: Path, codec: str, scratch: Path, limits: Limits | None = None) -> Path:
    """Decompress ``path`` into a new temporary file in ``scratch`` and return its path.

    Raises :class:`ConversionError` (and leaves no file) when the stream is damaged,
    truncated, or expands past ``limits.max_decompressed_bytes``, the compression ratio
    limit, or the free space of ``scratch``.
    """
    limits = limits or Limits()
    try:
        free = shutil.disk_usage(scratch).free
        fd, name = tempfile.mkstemp(dir=scratch, prefix=f".{path.name}.", suffix=".unpacked")
    except OSError as e:
        raise ConversionError(f"cannot write in {scratch}: {e.strerror or e}") from e
    temp = Path(name)
    cap = min(limits.max_decompressed_bytes, max(free - _DISK_MARGIN, 0))
    try:
        with os.fdopen(fd, "wb") as out, path.open("rb") as src:
            _copy(path, codec, src, out, cap, limits)
    except ResourceLimitError as e:
        _unlink(temp)
        raise ConversionError(
            f"{path}: {e}; refusing to decompress it (limit {cap} bytes, "
            f"ratio {limits.max_compression_ratio}:1, free space in {scratch})"
        ) from None
    except EOFError as e:
        _unlink(temp)
        raise ConversionError(f"{path}: {codec} {e}") from None
    except _DECODE_ERRORS as e:
        _unlink(temp)
        if isinstance(e, OSError) and e.errno is not None:
            raise ConversionError(f"cannot decompress {path}: {e.strerror or e}") from None
        raise ConversionError(f"{path}: damaged {codec} stream: {e}") from None
    except BaseException:
        _unlink(temp)
        raise
    return temp


def _copy(path: Path, codec: str, src: BinaryIO, out: BinaryIO, cap: int, limits: Limits) -> None:
    declared = -1
    if codec == "zf":
        declared = _zf_header(path, src)
        codec = "zlib"
        if declared > cap:
            raise ResourceLimitError(f"declared decompressed size {declared} exceeds {cap} bytes")
    stream = decompressing(src, codec, cap, limits.max_compression_ratio, limits.ratio_floor_bytes)
    written = 0
    while chunk := stream.read(_STEP):
        out.write(chunk)
        written += len(chunk)
    stream.read(1)  # a stream that ended before its end marker raises EOFError here
    if written == 0:
        raise ConversionError(f"{path}: the {codec} stream holds no data")
    if declared >= 0 and written != declared:
        raise ConversionError(
            f"{path}: the ZF header declares {declared} bytes, the stream holds {written}"
        )


def _zf_header(path: Path, src: BinaryIO) -> int:
    header = src.read(2 + _ZF_LENGTH)
    try:
        declared = int(header[2:].decode("ascii").strip(), 16)
    except (UnicodeDecodeError, ValueError):
        raise ConversionError(f"{path}: damaged ZF header") from None
    if src.read(1) != b" ":  # joblib <= 0.8.4 wrote one more padding space
        src.seek(2 + _ZF_LENGTH)
    return declared


def _unlink(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
