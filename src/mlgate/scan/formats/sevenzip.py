"""7-Zip archives, via py7zr (pure Python), member by member into bounded spools.

Nothing is extracted to a folder: each member is decompressed into an anonymous temporary
file through a writer that charges every byte to the limits, and scanned as soon as it is
complete. The sizes the headers declare are checked first (a 300 KB archive declaring 2 GiB
is refused without decompressing anything); since headers are attacker-controlled, the
bytes actually produced are bounded again while writing.
"""

from __future__ import annotations

import tempfile
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

import py7zr
from py7zr.io import Py7zIO, WriterFactory

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.source import Source, spooled
from mlgate.scan.streams import check_expansion

if TYPE_CHECKING:
    from py7zr.py7zr import FileInfo


def scan_7z(source: Source, ctx: ScanContext) -> str:
    """Check declared sizes against the limits, then scan every member as it is decompressed."""
    with source.open() as f:
        try:
            archive = py7zr.SevenZipFile(f, mode="r")
            infos = archive.list()
        except (
            py7zr.Bad7zFile,
            py7zr.exceptions.UnsupportedCompressionMethodError,
            EOFError,
            OSError,
            ValueError,
        ) as e:
            ctx.incomplete(source, f"7z archive could not be read: {e}")
            return "7z"
        with archive:
            _check_declared(source, ctx, infos)
            targets = _safe_members(source, ctx, archive)
            if targets:
                try:
                    archive.extract(targets=targets, factory=_Members(source, ctx))
                except (py7zr.exceptions.ArchiveError, EOFError, ValueError) as e:
                    ctx.incomplete(source, f"7z archive could not be fully read: {e}")
    return "7z"


def _check_declared(source: Source, ctx: ScanContext, infos: list[FileInfo]) -> None:
    limits = ctx.limits
    for _ in infos:
        ctx.count_member()
    try:
        check_expansion(
            sum(i.uncompressed or 0 for i in infos),
            source.size or 0,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
        )
    except ResourceLimitError as e:
        raise ResourceLimitError(f"7z headers declare a bomb: {e}; nothing extracted") from e


def _safe_members(source: Source, ctx: ScanContext, archive: py7zr.SevenZipFile) -> list[str]:
    """Regular members; escaping names and links are findings and never decompressed."""
    safe = []
    for member in archive.files:
        name = member.filename
        if name.startswith("/") or ".." in PurePosixPath(name).parts:
            ctx.add(rules.PATH_TRAVERSAL, source.location, f"member {name!r} escapes the archive")
        elif member.is_symlink:
            ctx.add(rules.PATH_TRAVERSAL, source.location, f"member {name!r} is a symbolic link")
        elif not member.is_directory:
            safe.append(name)
    return safe


class _Members(WriterFactory):
    """Receives each member py7zr decompresses; bounds the bytes across the archive."""

    def __init__(self, source: Source, ctx: ScanContext) -> None:
        self.source = source
        self.ctx = ctx
        self.total = 0

    def create(self, filename: str) -> Py7zIO:
        return _Member(self, filename)

    def charge(self, n: int) -> None:
        limits = self.ctx.limits
        self.total += n
        self.ctx.count_inflated(n)
        check_expansion(
            self.total,
            self.source.size or 0,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
        )


class _Member(Py7zIO):
    """One member spooled to an anonymous temporary file, scanned when py7zr completes it."""

    def __init__(self, members: _Members, filename: str) -> None:
        self._members = members
        self._name = filename  # relative: extract() is given no output folder
        self._spool = tempfile.TemporaryFile(prefix="mlgate-7z-")  # noqa: SIM115 - closed in close()

    def write(self, s: bytes | bytearray) -> int:
        self._members.charge(len(s))
        return self._spool.write(s)

    def read(self, size: int | None = None) -> bytes:
        return self._spool.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._spool.seek(offset, whence)

    def flush(self) -> None:
        self._spool.flush()

    def size(self) -> int:
        return self._spool.tell()

    def close(self) -> None:
        with self._spool:
            self._members.ctx.scan(spooled(self._members.source, self._name, self._spool))
