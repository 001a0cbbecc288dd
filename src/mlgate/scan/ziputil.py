"""A ZIP reader that sees archives the way PyTorch's loader (miniz) does.

Python's ``zipfile`` refuses archives that PyTorch happily loads (bad CRCs, odd flag bits,
local headers that disagree with the central directory) and returns the *last* of duplicate
names where PyTorch takes the first. Scanners built on ``zipfile`` have been bypassed that
way (picklescan CVE-2025-1945 and successors). This reader trusts nothing: it parses the
central directory itself, locates every entry's data through its *local* header as miniz
does, and reports every disagreement instead of failing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import BinaryIO

EOCD_SIG = b"PK\x05\x06"
EOCD64_LOC_SIG = b"PK\x06\x07"
EOCD64_SIG = b"PK\x06\x06"
CDIR_SIG = b"PK\x01\x02"
LOCAL_SIG = b"PK\x03\x04"
_EOCD_SEARCH = 22 + 65535 + 20
_U32 = 0xFFFFFFFF
_U16 = 0xFFFF


class ZipFormatError(Exception):
    """The archive's structure cannot be read at all."""


@dataclass
class ZipEntry:
    """One central-directory entry and what its local header says."""

    name: str
    method: int
    flags: int
    crc: int
    compressed_size: int
    size: int
    header_offset: int
    external_attr: int
    create_system: int
    data_offset: int = -1
    problems: list[str] = field(default_factory=list)

    @property
    def is_dir(self) -> bool:
        return self.name.endswith("/")

    @property
    def is_symlink(self) -> bool:
        return self.create_system == 3 and (self.external_attr >> 16) & 0o170000 == 0o120000


@dataclass
class ZipDirectory:
    entries: list[ZipEntry]
    prefix: int  # bytes before the archive proper (self-extracting stubs, polyglots)
    problems: list[str] = field(default_factory=list)
    overlapping: list[ZipEntry] = field(default_factory=list)


def find_eocd(tail: bytes, strict: bool = False) -> int:
    """Position of the end-of-central-directory record in ``tail``, or -1.

    ``strict`` requires the record and its comment to end exactly at the end of the data,
    which tells a real trailing archive from ZIP bytes merely embedded in another format.
    """
    pos = tail.rfind(EOCD_SIG)
    while pos >= 0:
        if len(tail) - pos >= 22:
            comment_len = struct.unpack_from("<H", tail, pos + 20)[0]
            end = pos + 22 + comment_len
            if end == len(tail) or (end < len(tail) and not strict):
                return pos
        pos = tail.rfind(EOCD_SIG, 0, pos)
    return -1


def read_directory(f: BinaryIO, size: int, max_entries: int) -> ZipDirectory:
    """Parse the central directory and validate every entry against its local header."""
    f.seek(max(0, size - _EOCD_SEARCH))
    tail = f.read()
    tail_base = size - len(tail)
    pos = find_eocd(tail)
    if pos < 0:
        raise ZipFormatError("no end-of-central-directory record")
    eocd_at = tail_base + pos
    (_, _, _, count, cd_size, cd_offset, _) = struct.unpack_from("<4HIIH", tail, pos + 4)
    problems: list[str] = []
    if pos >= 20 and tail[pos - 20 : pos - 16] == EOCD64_LOC_SIG:
        count, cd_size, cd_offset, eocd_at = _zip64(f, tail, pos)
    elif count == _U16 or _U32 in (cd_offset, cd_size):
        raise ZipFormatError("ZIP64 sizes without a ZIP64 locator")
    prefix = eocd_at - cd_size - cd_offset
    if prefix < 0:
        raise ZipFormatError("central directory lies outside the file")
    if prefix:
        problems.append(f"{prefix} bytes precede the archive")
    if count > max_entries:
        raise ZipFormatError(f"{count} entries exceed the limit of {max_entries}")
    f.seek(cd_offset + prefix)
    cdir = f.read(cd_size)
    if len(cdir) < cd_size:
        raise ZipFormatError("central directory is truncated")
    entries = _parse_central(cdir, count, problems)
    for entry in entries:
        entry.header_offset += prefix
        _check_local(f, entry, size)
    return ZipDirectory(entries, prefix, problems, _overlapping(entries))


def _overlapping(entries: list[ZipEntry]) -> list[ZipEntry]:
    """Entries whose local header and data share bytes with another entry's.

    No archiver writes this; "A better zip bomb" (Fifield, 2019) does: thousands of central
    entries reuse one compressed kernel, so each entry passes the per-member ratio check
    while the archive expands a million-fold.
    """
    located = sorted((e for e in entries if e.data_offset >= 0), key=lambda e: e.header_offset)
    hit: dict[int, ZipEntry] = {}
    widest: ZipEntry | None = None
    for entry in located:
        if widest is not None and entry.header_offset < _end(widest):
            hit[id(entry)] = entry
            hit[id(widest)] = widest
        if widest is None or _end(entry) > _end(widest):
            widest = entry
    return list(hit.values())


def _end(entry: ZipEntry) -> int:
    return max(entry.data_offset + entry.compressed_size, entry.header_offset + 30)


def _zip64(f: BinaryIO, tail: bytes, pos: int) -> tuple[int, int, int, int]:
    loc = pos - 20
    rec_offset = struct.unpack_from("<Q", tail, loc + 8)[0]
    f.seek(rec_offset)
    rec = f.read(56)
    if len(rec) < 56 or rec[:4] != EOCD64_SIG:
        raise ZipFormatError("ZIP64 end-of-central-directory record not found")
    count, cd_size, cd_offset = struct.unpack_from("<QQQ", rec, 32)
    return count, cd_size, cd_offset, rec_offset


def _parse_central(cdir: bytes, count: int, problems: list[str]) -> list[ZipEntry]:
    entries: list[ZipEntry] = []
    pos = 0
    while pos + 46 <= len(cdir) and cdir[pos : pos + 4] == CDIR_SIG:
        (
            made_by,
            _,
            flags,
            method,
            _,
            _,
            crc,
            csize,
            usize,
            nlen,
            xlen,
            clen,
            _,
            _,
            ext_attr,
            offset,
        ) = struct.unpack_from("<HHHHHHIIIHHHHHII", cdir, pos + 4)
        raw_name = cdir[pos + 46 : pos + 46 + nlen]
        extra = cdir[pos + 46 + nlen : pos + 46 + nlen + xlen]
        usize, csize, offset = _apply_zip64_extra(extra, usize, csize, offset)
        entries.append(
            ZipEntry(
                name=_decode_name(raw_name, flags),
                method=method,
                flags=flags,
                crc=crc,
                compressed_size=csize,
                size=usize,
                header_offset=offset,
                external_attr=ext_attr,
                create_system=made_by >> 8,
            )
        )
        pos += 46 + nlen + xlen + clen
    if len(entries) != count:
        problems.append(
            f"end record announces {count} entries, central directory holds {len(entries)}"
        )
    return entries


def _apply_zip64_extra(extra: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 1:
            data = extra[pos + 4 : pos + 4 + length]
            fields = [usize, csize, offset]
            idx = 0
            for i, value in enumerate(fields):
                if value == _U32 and idx + 8 <= len(data):
                    fields[i] = struct.unpack_from("<Q", data, idx)[0]
                    idx += 8
            return fields[0], fields[1], fields[2]
        pos += 4 + length
    return usize, csize, offset


def _decode_name(raw: bytes, flags: int) -> str:
    if flags & 0x800:
        return raw.decode("utf-8", "replace")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp437")


def _check_local(f: BinaryIO, entry: ZipEntry, size: int) -> None:
    f.seek(entry.header_offset)
    head = f.read(30)
    if len(head) < 30 or head[:4] != LOCAL_SIG:
        entry.problems.append("local header missing or damaged")
        return
    (_, flags, method, _, _, crc, csize, _usize, nlen, xlen) = struct.unpack_from(
        "<HHHHHIIIHH", head, 4
    )
    name = _decode_name(f.read(nlen), flags)
    entry.data_offset = entry.header_offset + 30 + nlen + xlen
    if name != entry.name:
        entry.problems.append(f"local header names it {name!r}")
    if method != entry.method:
        entry.problems.append(
            f"local header says compression method {method}, central directory {entry.method}"
        )
    if flags != entry.flags:
        entry.problems.append(
            f"general-purpose flags differ (local {flags:#06x}, central {entry.flags:#06x})"
        )
    if not flags & 0x8 and crc != entry.crc and csize != _U32:
        entry.problems.append("local header CRC differs from the central directory")
    if entry.flags & 0x1:
        entry.problems.append("entry is flagged as encrypted")
    if entry.data_offset + entry.compressed_size > size:
        entry.problems.append("entry data runs past the end of the file")
