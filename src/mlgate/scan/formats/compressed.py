"""Whole-file compression (gzip, bz2, xz, lzma, zlib, lz4): joblib's compressors and .gz files."""

from __future__ import annotations

from typing import BinaryIO

from mlgate.scan.context import ScanContext
from mlgate.scan.source import Source
from mlgate.scan.streams import decompressing


def scan_compressed(source: Source, ctx: ScanContext, codec: str) -> str:
    """Scan the decompressed content as an artifact of its own, with bomb limits."""
    limits = ctx.limits

    def opener() -> BinaryIO:
        return decompressing(
            source.open(),
            codec,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
            ctx.count_inflated,
        )

    ctx.scan(source.child(f"<{codec}>", opener, None, False))
    return codec
