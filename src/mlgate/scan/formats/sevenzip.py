"""7-Zip archives, via py7zr (pure Python; extracted into a temporary folder)."""

from __future__ import annotations

import tempfile
from pathlib import Path, PurePosixPath

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source, file_source


def scan_7z(source: Source, ctx: ScanContext) -> str:
    """Check declared sizes against the limits, extract, then scan every member."""
    import py7zr  # noqa: PLC0415 - only needed for 7z input

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
        total = sum(i.uncompressed or 0 for i in infos)
        if total > ctx.limits.max_decompressed_bytes or len(infos) > ctx.limits.max_archive_members:
            ctx.incomplete(
                source,
                f"7z archive expands to {total} bytes in {len(infos)} members, beyond the limits",
                rules.LIMIT_EXCEEDED,
            )
            return "7z"
        safe = []
        for member in archive.files:
            name = member.filename
            if name.startswith("/") or ".." in PurePosixPath(name).parts:
                ctx.add(
                    rules.PATH_TRAVERSAL, source.location, f"member {name!r} escapes the archive"
                )
            elif member.is_symlink:
                # Never extracted: a link could point anywhere on the scanning machine.
                ctx.add(
                    rules.PATH_TRAVERSAL, source.location, f"member {name!r} is a symbolic link"
                )
            elif not member.is_directory:
                safe.append(name)
        with tempfile.TemporaryDirectory(prefix="mlgate-7z-") as tmp:
            archive.extract(path=tmp, targets=safe)
            archive.close()
            for name in safe:
                path = Path(tmp) / name
                if path.is_file() and not path.is_symlink():
                    child = file_source(path)
                    ctx.scan(source.child(name, child.opener, child.size, True))
    return "7z"
