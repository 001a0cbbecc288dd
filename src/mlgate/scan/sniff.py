"""Format detection by content, never by file name."""

from __future__ import annotations

import struct
from enum import Enum

from mlgate.scan.source import Source
from mlgate.scan.ziputil import find_eocd

HEAD = 600


class Format(Enum):
    """Every reading the scanner knows; each has exactly one handler (see formats/)."""

    PICKLE = "pickle"
    ZIP = "zip"
    NUMPY = "numpy"
    GZIP = "gzip"
    BZ2 = "bz2"
    XZ = "xz"
    LZMA = "lzma"
    ZLIB = "zlib"
    LZ4 = "lz4"
    TAR = "tar"
    SEVEN_ZIP = "7z"
    SAFETENSORS = "safetensors"


_MAGIC: tuple[tuple[bytes, Format], ...] = (
    (b"\x93NUMPY", Format.NUMPY),
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),
    (b"\x1f\x8b", Format.GZIP),
    (b"\xfd7zXZ\x00", Format.XZ),
    (b"7z\xbc\xaf\x27\x1c", Format.SEVEN_ZIP),
    (b"\x04\x22\x4d\x18", Format.LZ4),
)


def sniff(head: bytes) -> Format:
    """The reading the file's first bytes call for; PICKLE is the fallback attempt.

    Anything that is no other format is tried as a pickle: protocol 0 has no magic bytes,
    and the pickle handler reports the file as unrecognised if it is not one.
    """
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return Format.BZ2
    if len(head) >= 262 and head[257:262] == b"ustar":
        return Format.TAR
    if _is_zlib(head):
        return Format.ZLIB
    if head[:3] == b"\x5d\x00\x00" and len(head) >= 13:
        return Format.LZMA
    if _is_safetensors(head):
        return Format.SAFETENSORS
    return Format.PICKLE


def has_zip_directory(source: Source) -> bool:
    """True when the file ends like a ZIP archive (polyglot check for non-ZIP heads)."""
    return find_eocd(source.tail(22 + 65535), strict=True) >= 0


def _is_zlib(head: bytes) -> bool:
    if len(head) < 2:
        return False
    cmf, flg = head[0], head[1]
    return cmf == 0x78 and (cmf * 256 + flg) % 31 == 0


def _is_safetensors(head: bytes) -> bool:
    if len(head) < 10:
        return False
    n = struct.unpack("<Q", head[:8])[0]
    return 2 <= n <= 100_000_000 and head[8:10] in (b'{"', b"{ ", b"{\n", b"{}")
