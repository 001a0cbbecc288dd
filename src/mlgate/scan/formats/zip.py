"""ZIP archives: PyTorch checkpoints, TorchScript archives, torch.package archives, TorchServe
``.mar`` archives, NumPy .npz and plain zips.

Every member is found by content. In a PyTorch archive the storage records
(``<prefix>/data/<n>``) are raw tensor bytes that the loader never unpickles, so they are
not read at all: a multi-GB checkpoint costs only its pickles.
"""

from __future__ import annotations

import posixpath
import re
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import BinaryIO

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.formats.torch_package import EXTERN_MODULES, PACKAGE_DATA, report_package
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.source import Source, seekable
from mlgate.scan.streams import decompressing
from mlgate.scan.ziputil import ZipDirectory, ZipEntry, ZipFormatError, read_directory

# (member naming the file, path it names) -> that member, when the archive holds it
Resolver = Callable[[str, str], "Source | None"]
_STORAGE = re.compile(r"(^|/)data/\d+$")
# Small text records PyTorch's C++ reader parses itself (never unpickled).
_TORCH_METADATA = re.compile(
    r"(^|/)(version|byteorder|\.data/version|\.data/serialization_id|\.format_version|"
    r"\.storage_alignment)$"
)
_METHODS = {0: "stored", 8: "deflate"}


def scan_zip(source: Source, ctx: ScanContext) -> str:
    """Scan every member of a ZIP archive the way PyTorch and NumPy would read it."""
    with seekable(source) as indexed:
        return _scan_indexed(indexed, ctx)


def _scan_indexed(source: Source, ctx: ScanContext) -> str:
    assert source.size is not None
    with source.open() as f:
        try:
            directory = read_directory(f, source.size, ctx.limits.max_archive_members)
        except ZipFormatError as e:
            ctx.incomplete(source, f"ZIP structure could not be read: {e}")
            return "zip"
    kind = _kind(directory.entries)
    _report_structure(source, ctx, directory)
    siblings = _sibling_resolver(source, ctx, directory.entries)
    overlapping = {id(e) for e in directory.overlapping}
    if overlapping:
        ctx.incomplete(
            source,
            f"{len(overlapping)} entries share or overlap another entry's data (overlapping-"
            "entry zip bomb, Fifield 2019); they were not analysed",
            rules.LIMIT_EXCEEDED,
        )
    for entry in directory.entries:
        ctx.count_member()
        if entry.is_dir or id(entry) in overlapping:
            continue
        if kind in ("pytorch-zip", "torchscript") and (
            _STORAGE.search(entry.name) or _TORCH_METADATA.search(entry.name)
        ):
            continue
        if kind == "torch-package" and PACKAGE_DATA.search(entry.name):
            continue
        _scan_member(source, ctx, entry, kind, siblings)
    if kind == "torch-package":
        _report_package(source, ctx, directory.entries)
    return kind


def _report_package(source: Source, ctx: ScanContext, entries: list[ZipEntry]) -> None:
    modules = sorted(e.name for e in entries if e.name.endswith(".py") and not e.is_dir)
    extern = next((e for e in entries if e.name.endswith(EXTERN_MODULES)), None)
    if extern is not None and (extern.data_offset < 0 or extern.method not in _METHODS):
        extern = None  # unreadable: its scan as a member would have said so; judged as absent
    report_package(
        source, ctx, modules, None if extern is None else _member_source(source, ctx, extern)
    )


def _kind(entries: list[ZipEntry]) -> str:
    names = [e.name for e in entries]
    if any(n.endswith(EXTERN_MODULES) for n in names):
        return "torch-package"  # before data.pkl: a package may hold any pickle name
    if "MAR-INF/MANIFEST.json" in names:
        return "torchserve-mar"
    if any(n.endswith("/code/") or "/code/" in n for n in names) and any(
        n.endswith("constants.pkl") for n in names
    ):
        return "torchscript"
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        return "pytorch-zip"
    if names and all(n.endswith(".npy") for n in names):
        return "npz"
    if "config.json" in names and (
        "metadata.json" in names or "model.weights.h5" in names or len(names) == 1
    ):
        return "keras"  # keras.saving reads only config.json before building objects
    return "zip"


def _report_structure(source: Source, ctx: ScanContext, directory: ZipDirectory) -> None:
    for problem in directory.problems:
        ctx.add(rules.ARCHIVE_ANOMALY, source.location, f"ZIP structure: {problem}")
    counts = Counter(e.name for e in directory.entries)
    for name, n in counts.items():
        if n > 1:
            ctx.add(
                rules.ARCHIVE_ANOMALY,
                source.location,
                f"{n} entries named {name!r}: PyTorch reads the first, Python's zipfile the "
                "last; every copy was analysed",
            )
    for entry in directory.entries:
        for problem in entry.problems:
            ctx.add(
                rules.ARCHIVE_ANOMALY,
                source.child(entry.name, source.opener, None, True).location,
                problem,
            )
        if _escapes(entry.name):
            ctx.add(
                rules.PATH_TRAVERSAL,
                source.location,
                f"member name {entry.name!r} escapes the extraction folder",
            )
        if entry.is_symlink:
            ctx.add(
                rules.PATH_TRAVERSAL, source.location, f"member {entry.name!r} is a symbolic link"
            )


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "\\")) or ".." in parts or bool(re.match(r"^[A-Za-z]:", name))


def _scan_member(
    source: Source, ctx: ScanContext, entry: ZipEntry, kind: str, siblings: Resolver
) -> None:
    member_name = entry.name
    if entry.data_offset < 0:
        ctx.incomplete(
            source.child(member_name, source.opener, None, True),
            "member data cannot be located (damaged local header)",
        )
        return
    if entry.method not in _METHODS:
        ctx.incomplete(
            source.child(member_name, source.opener, None, True),
            f"compression method {entry.method} is not supported; member not analysed",
        )
        return
    child = replace(_member_source(source, ctx, entry), siblings=partial(siblings, member_name))
    if kind in ("torchscript",) and member_name.endswith(".py"):
        from mlgate.scan.formats.torchscript import scan_code_member  # noqa: PLC0415

        scan_code_member(child, ctx)
        return
    if kind == "keras" and member_name == "config.json":
        from mlgate.scan.formats.keras import scan_config_member  # noqa: PLC0415

        scan_config_member(child, ctx)
        return
    ctx.scan(child)
    if entry.size <= ctx.limits.crc_check_max_bytes:
        _check_crc(child, ctx, entry)


def _member_source(source: Source, ctx: ScanContext, entry: ZipEntry) -> Source:
    window = source.slice(entry.name, entry.data_offset, entry.compressed_size)
    return window if entry.method == 0 else _inflated(source, ctx, entry, window)


def _sibling_resolver(source: Source, ctx: ScanContext, entries: list[ZipEntry]) -> Resolver:
    """Finds the member a pickle in this archive names as a file to load (multi-stage)."""
    by_name = {e.name: e for e in reversed(entries) if e.data_offset >= 0 and not e.is_dir}

    def resolve(member: str, path: str) -> Source | None:
        for candidate in (posixpath.join(posixpath.dirname(member), path), path):
            entry = by_name.get(posixpath.normpath(candidate).lstrip("/"))
            if entry is not None and entry.method in _METHODS:
                return _member_source(source, ctx, entry)
        return None

    return resolve


def _inflated(source: Source, ctx: ScanContext, entry: ZipEntry, window: Source) -> Source:
    limits = ctx.limits
    cap = min(limits.max_decompressed_bytes, max(entry.size, 0) or limits.max_decompressed_bytes)

    def opener() -> BinaryIO:
        return decompressing(
            window.open(),
            "deflate",
            max(cap, 1),
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
            ctx.count_inflated,
        )

    return source.child(entry.name, opener, entry.size, False)


def _check_crc(child: Source, ctx: ScanContext, entry: ZipEntry) -> None:
    crc = 0
    try:
        with child.open() as f:
            while chunk := f.read(1 << 20):
                crc = zlib.crc32(chunk, crc)
                ctx.check_budget()  # stored members have no decompression meter
    except ResourceLimitError:
        if ctx.is_incomplete(child):
            return  # the member scan already reported the limit
        raise  # the budget is spent: the archive is incomplete (reported by the driver)
    except (OSError, EOFError, zlib.error):
        return  # the member scan already reported why it could not be read
    if crc != entry.crc:
        ctx.add(
            rules.ARCHIVE_ANOMALY,
            child.location,
            f"CRC mismatch (stored {entry.crc:#010x}, actual {crc:#010x}): Python's zipfile "
            "refuses this member, PyTorch loads it",
        )
