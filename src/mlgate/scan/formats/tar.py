"""Tar archives (compression is undone first by the compressed-stream handler)."""

from __future__ import annotations

import tarfile
from pathlib import PurePosixPath
from typing import BinaryIO, cast

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.source import Source, seekable


def scan_tar(source: Source, ctx: ScanContext) -> str:
    """Scan every regular member; links and escaping names are findings."""
    with source.open() as f:
        try:
            archive = (
                tarfile.open(fileobj=f, mode="r:")  # noqa: SIM115
                if source.seekable
                else tarfile.open(fileobj=f, mode="r|")  # noqa: SIM115
            )
        except tarfile.TarError as e:
            ctx.incomplete(source, f"tar structure could not be read: {e}")
            return "tar"
        count = 0
        try:
            for member in archive:
                count += 1
                ctx.count_member()
                _member(source, ctx, archive, member)
        except tarfile.TarError as e:
            ctx.incomplete(source, f"tar structure is damaged after {count} members: {e}")
    return "tar"


def _member(
    source: Source, ctx: ScanContext, archive: tarfile.TarFile, member: tarfile.TarInfo
) -> None:
    name = member.name
    if name.startswith("/") or ".." in PurePosixPath(name).parts:
        ctx.add(rules.PATH_TRAVERSAL, source.location, f"member {name!r} escapes the archive")
    if member.issym() or member.islnk():
        target = member.linkname
        escapes = target.startswith("/") or ".." in PurePosixPath(target).parts
        ctx.add(
            rules.PATH_TRAVERSAL,
            source.location,
            f"member {name!r} is a {'symbolic' if member.issym() else 'hard'} link to "
            f"{target!r}" + (" outside the archive" if escapes else ""),
            severity=rules.PATH_TRAVERSAL.severity if escapes else rules.UNRECOGNISED.severity,
        )
        return
    if not member.isfile() or member.size == 0:
        return  # an empty member holds nothing to analyse (and costs a scan each otherwise)
    if source.seekable:
        ctx.scan(source.slice(name, member.offset_data, member.size))
        return
    if member.size > ctx.limits.max_decompressed_bytes:
        raise ResourceLimitError(f"tar member {name!r} is larger than the limit")
    extracted = archive.extractfile(member)
    if extracted is None:
        return
    # A streamed (compressed) tar can only be read once, in order: spool each member.
    stream = cast(BinaryIO, extracted)  # tarfile's member reader is a BufferedReader
    streamed = source.child(name, lambda: stream, member.size, False)
    with seekable(streamed) as child:
        ctx.scan(child)
