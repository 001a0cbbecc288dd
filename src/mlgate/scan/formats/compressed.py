"""Whole-file compression (gzip, bz2, xz, lzma, zlib, lz4, zstd): joblib's compressors,
.gz files, pandas' compression="infer" (.zst) and tar.zst."""

from __future__ import annotations

from typing import BinaryIO

from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source
from mlgate.scan.streams import decompressing


def scan_compressed(source: Source, ctx: ScanContext, codec: str) -> str:
    """Scan the decompressed content as an artifact of its own, with bomb limits."""
    limits = ctx.limits
    truncated: list[bool] = []

    def opener() -> BinaryIO:
        return decompressing(
            source.open(),
            codec,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
            ctx.count_inflated,
            lambda: truncated.append(True),
        )

    ctx.scan(source.child(f"<{codec}>", opener, None, False))
    if truncated:
        # Some readers of the content (the pickle reader) take the early end as the end of
        # the data; the file is damaged and what it held past the cut is unknown.
        ctx.incomplete(
            source,
            f"the {codec} stream ends before its end marker (truncated); "
            "its content past the cut is unknown",
        )
    return codec
