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
    ZSTD = "zstd"
    TAR = "tar"
    SEVEN_ZIP = "7z"
    SAFETENSORS = "safetensors"
    HDF5 = "hdf5"
    GGUF = "gguf"
    TFLITE = "tflite"
    PROTOBUF = "protobuf"
    JSON = "json"
    MSGPACK = "msgpack"
    PYTHON = "python"
    YAML = "yaml"


_LZ4_MAGIC = b"\x04\x22\x4d\x18"
_MAGIC: tuple[tuple[bytes, Format], ...] = (
    (b"\x93NUMPY", Format.NUMPY),
    (b"PK\x03\x04", Format.ZIP),
    (b"PK\x05\x06", Format.ZIP),
    (b"\x1f\x8b", Format.GZIP),
    (b"\xfd7zXZ\x00", Format.XZ),
    (b"7z\xbc\xaf\x27\x1c", Format.SEVEN_ZIP),
    (_LZ4_MAGIC, Format.LZ4),
    (b"\x28\xb5\x2f\xfd", Format.ZSTD),  # RFC 8878: pandas' compression="zstd", .zst
    (b"\x89HDF\r\n\x1a\n", Format.HDF5),
    (b"GGUF", Format.GGUF),
)


def sniff(head: bytes, name: str = "") -> Format:
    """The reading the file's first bytes call for; PICKLE is the fallback attempt.

    Anything that is no other format is tried as a pickle: protocol 0 has no magic bytes,
    and the pickle handler reports the file as unrecognised if it is not one. ``name`` is
    only a hint for formats without magic bytes (Python source, YAML); content still decides.
    """
    for magic, fmt in _MAGIC:
        if head.startswith(magic):
            return fmt
    if _is_skippable_frame(head):
        return Format.LZ4 if _after_skippable_frames(head).startswith(_LZ4_MAGIC) else Format.ZSTD
    if head[4:8] == b"TFL3":
        return Format.TFLITE
    if head[:3] == b"BZh" and head[4:10] == b"1AY&SY":
        return Format.BZ2
    if len(head) >= 262 and head[257:262] == b"ustar":
        return Format.TAR
    if _is_zlib(head) and not _is_named_text(head, name):
        return Format.ZLIB  # "x =" and "x " open many a text file with a valid zlib header
    if head[:3] == b"\x5d\x00\x00" and len(head) >= 13:
        return Format.LZMA
    if _is_safetensors(head):
        return Format.SAFETENSORS
    return _sniff_headerless(head, name)


def _sniff_headerless(head: bytes, name: str) -> Format:
    """Formats with no magic bytes; each handler falls back to the pickle reading when the
    content turns out not to be its format, so a wrong guess never skips a pickle."""
    if head[:1] == b"\x80" and head[1:2] and head[1] <= 5:
        return Format.PICKLE  # PROTO opcode: also a valid protobuf tag, so test it first
    stripped = head.lstrip(b" \t\r\n\xef\xbb\xbf")
    if stripped[:1] in (b"{", b"["):  # neither byte is a pickle opcode
        return Format.JSON
    if _is_msgpack_map(head):
        return Format.MSGPACK
    if name.endswith(".py") and _is_text(head):
        return Format.PYTHON
    if _is_yaml_name(name) and _is_text(head):
        return Format.YAML  # configuration that loaders instantiate (Hydra, MLflow, NeMo)
    if _is_protobuf(head):
        return Format.PROTOBUF
    return Format.PICKLE


def _is_skippable_frame(head: bytes) -> bool:
    # Magic 0x184D2A50-0x184D2A5F, little-endian: a frame of user data decoders skip.
    return len(head) >= 8 and head[0] & 0xF0 == 0x50 and head[1:4] == b"\x2a\x4d\x18"


def _after_skippable_frames(head: bytes) -> bytes:
    """What follows the leading skippable frames, as far as ``head`` shows it.

    zstd (RFC 8878 section 3.1.2) and LZ4 frames share skippable frames, and a file may open
    with one to hide its codec from magic-byte sniffing. Beyond ``head`` zstd is assumed: a
    wrong guess fails to decompress and the file is reported incomplete, never passed.
    """
    while _is_skippable_frame(head):
        head = head[8 + struct.unpack_from("<I", head, 4)[0] :]
    return head


def _is_yaml_name(name: str) -> bool:
    return name.lower().endswith((".yaml", ".yml")) or name == "MLmodel"


def _is_named_text(head: bytes, name: str) -> bool:
    return (name.endswith(".py") or _is_yaml_name(name)) and _is_text(head)


def _is_text(head: bytes) -> bool:
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.start >= len(head) - 3  # a character cut by the end of the sample
    return b"\x00" not in head


def _is_msgpack_map(head: bytes) -> bool:
    # Flax msgpack: a map (fixmap 0x81-0x8f, map16/32) whose first key is a string. A pickle
    # starting with PROTO is 0x80 followed by a protocol number, which this excludes.
    if len(head) < 2:
        return False
    return (0x81 <= head[0] <= 0x8F or head[0] in (0xDE, 0xDF)) and (
        0xA0 <= head[1] <= 0xBF or head[1] in (0xD9, 0xDA, 0xDB) or head[0] in (0xDE, 0xDF)
    )


def _is_protobuf(head: bytes) -> bool:
    """A plausible protobuf message: the first two fields decode with small field numbers."""
    pos = 0
    for _ in range(2):
        if pos >= len(head):
            return pos > 0
        tag, pos = _varint(head, pos)
        field, wire = tag >> 3, tag & 7
        if tag < 0 or not 1 <= field <= 64 or wire not in (0, 1, 2, 5):
            return False
        if wire == 0:
            value, pos = _varint(head, pos)
            if value < 0:
                return False
        elif wire == 2:
            length, pos = _varint(head, pos)
            if length < 0:
                return False
            pos += length
        else:
            pos += 8 if wire == 1 else 4
    return True


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """Decode a varint at ``pos``; (-1, pos) when invalid or cut off."""
    value = shift = 0
    for i in range(pos, min(pos + 10, len(data))):
        value |= (data[i] & 0x7F) << shift
        if data[i] < 0x80:
            return value, i + 1
        shift += 7
    return -1, pos


# Git LFS pointer files (https://github.com/git-lfs/git-lfs/blob/main/docs/spec.md): a short
# text "version <spec url>\noid sha256:<hex>\nsize <n>\n" committed in place of the content.
# "hawser" is the spec's pre-release name, still accepted by git-lfs.
_LFS_VERSIONS = (
    b"version https://git-lfs.github.com/spec/",
    b"version https://hawser.github.com/spec/",
)
LFS_POINTER_MAX = 1024  # the spec caps pointer files below 1024 bytes


def is_lfs_pointer(head: bytes, size: int | None) -> bool:
    """True when the file is a Git LFS pointer: the real weights were never fetched."""
    small = size is not None and size < LFS_POINTER_MAX
    return small and head.startswith(_LFS_VERSIONS) and b"\noid " in head


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
