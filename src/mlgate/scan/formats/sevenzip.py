"""7-Zip archives, decoded by py7zr in a child process (``_7z_worker.py``), member by member.

py7zr's decoders are C code (pyppmd, inflate64, pybcj, brotli) that corrupt input can make
loop forever (py7zr issues #255, #417), and py7zr's Python loops feeding them never reach
the scan's deadline checks, and a corrupt PPMd stream is a segfault in pyppmd. The decoder
runs in a process (started once per scan, ~0.2 s, then ~10 ms per archive; replaced after a
hang or crash; see ``scan/reader_process.py``) under memory, CPU and file-size limits, and is
killed when the archive's decoding allowance (``_Archive._next``) or the file's deadline ends.
A hang or crash is a finding on the archive, never a stuck or dead scan.

The sizes the headers declare are checked here first (a 300 KB archive declaring 2 GiB is
refused without decompressing anything); since headers are attacker-controlled, the bytes
actually produced are bounded again: the worker stops at the file's remaining budget, and
each member is charged here when it is reported. Every member is scanned as soon as it is
complete, so the members before a hang or crash are analysed and reported.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any

from mlgate.scan import rules
from mlgate.scan.context import ScanContext
from mlgate.scan.limits import ResourceLimitError
from mlgate.scan.reader_process import ReaderFailed, ReaderProcess
from mlgate.scan.source import Source, spooled
from mlgate.scan.streams import check_expansion

WORKER_SCRIPT = Path(__file__).with_name("_7z_worker.py")
# A member listing longer than this is not an honest worker's.
_MAX_LINE = 64 << 20


def scan_7z(source: Source, ctx: ScanContext) -> str:
    """Check declared sizes against the limits, then scan every member as it is decompressed."""
    # Taken out of the helpers while in use: a 7z inside this one gets a worker of its own.
    worker = ctx.helpers.pop("7z", None)
    if not isinstance(worker, ReaderProcess):
        worker = _new_worker(ctx.limits.sevenzip_worker_memory)
    reusable = False
    with _whole_file(source) as path, tempfile.TemporaryDirectory(prefix="mlgate-7z-") as out:
        try:
            reusable = _Archive(source, ctx, worker, Path(out)).extract(path)
        except ReaderFailed as e:
            ctx.incomplete(source, str(e), e.rule)
        finally:
            # Stopped mid-archive (hang, crash, a limit met here), the worker may still be
            # decoding or writing: the next archive gets a new one.
            if reusable and "7z" not in ctx.helpers:
                ctx.helpers["7z"] = worker
            else:
                worker.close()
    return "7z"


@contextmanager
def _whole_file(source: Source) -> Iterator[Path]:
    """A file holding exactly the archive, for the worker to open: the file scanned, or a
    temporary copy of a nested archive (the copy is bounded by the parent's limits)."""
    if source.on_disk is not None and source.on_disk[1] == 0:
        path = source.on_disk[0]
        if source.size == path.stat().st_size:
            yield path
            return
    with tempfile.NamedTemporaryFile(prefix="mlgate-7z-") as spool, source.open() as f:
        shutil.copyfileobj(f, spool, 1 << 20)
        spool.flush()
        yield Path(spool.name)


def _is_member(member: object) -> bool:
    return (
        isinstance(member, list)
        and len(member) == 4
        and isinstance(member[0], str)
        and (member[1] is None or isinstance(member[1], int))
    )


def _check_declared(source: Source, ctx: ScanContext, members: list[list[Any]]) -> None:
    limits = ctx.limits
    for _ in members:
        ctx.count_member()
    try:
        check_expansion(
            sum(m[1] or 0 for m in members),
            source.size or 0,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
        )
    except ResourceLimitError as e:
        raise ResourceLimitError(f"7z headers declare a bomb: {e}; nothing extracted") from e


def _safe_members(source: Source, ctx: ScanContext, members: list[list[Any]]) -> list[str]:
    """Regular members; escaping names and links are findings and never decompressed."""
    safe = []
    for name, _, is_directory, is_symlink in members:
        if name.startswith("/") or ".." in PurePosixPath(name).parts:
            ctx.add(rules.PATH_TRAVERSAL, source.location, f"member {name!r} escapes the archive")
        elif is_symlink:
            ctx.add(rules.PATH_TRAVERSAL, source.location, f"member {name!r} is a symbolic link")
        elif not is_directory:
            safe.append(name)
    return safe


class _Archive:
    """One archive's exchange with the worker: its members, bytes and deadline."""

    def __init__(
        self, source: Source, ctx: ScanContext, worker: ReaderProcess, folder: Path
    ) -> None:
        self.source = source
        self.ctx = ctx
        self.worker = worker
        self.folder = folder
        self.total = 0
        self.allowance = 0.0  # seconds of decoding left, set from the declared sizes
        now = time.monotonic()
        self.deadline = ctx.deadline if ctx.deadline is not None else now + ctx.limits.file_seconds

    def extract(self, path: Path) -> bool:
        """Scan the archive's members; True when the worker is ready for the next archive."""
        source, ctx = self.source, self.ctx
        self.worker.send(self._request(path))
        # The listing waits for the worker's start-up (py7zr's import) and header parsing.
        listing = self.worker.next_event(self.deadline)
        if "error" in listing:
            ctx.incomplete(source, f"7z archive could not be read: {listing['error']}")
            return True
        members = listing.get("members")
        if not isinstance(members, list) or not all(_is_member(m) for m in members):
            raise ReaderFailed("7z decoder gave an invalid member list")
        _check_declared(source, ctx, members)
        declared = sum(m[1] or 0 for m in members)  # bounded by the ratio check just made
        limits = ctx.limits
        self.allowance = (
            limits.sevenzip_idle_seconds + declared / limits.sevenzip_min_bytes_per_second
        )
        self.worker.send({"extract": _safe_members(source, ctx, members)})
        while "member" in (event := self._next()):
            self._scan_member(event)
        if "limit" in event:
            ctx.incomplete(source, f"limit reached: {event['limit']}", rules.LIMIT_EXCEEDED)
        elif "error" in event:
            ctx.incomplete(source, f"7z archive could not be fully read: {event['error']}")
        elif "end" not in event:
            raise ReaderFailed("7z decoder gave an invalid answer")
        return True

    def _next(self) -> dict[str, Any]:
        """The worker's next report, within the decoding time the archive can need. A decoder
        looping inside C (PPMd on exhausted input) reports nothing: waiting is charged to an
        allowance of ``sevenzip_idle_seconds`` plus the declared bytes at
        ``sevenzip_min_bytes_per_second``, so a hang costs seconds, not the file's whole
        budget. Time the scan spends on members already reported is not charged."""
        start = time.monotonic()
        event = self.worker.next_event(min(self.deadline, start + self.allowance))
        self.allowance -= time.monotonic() - start
        return event

    def _request(self, path: Path) -> dict[str, Any]:
        ctx, limits = self.ctx, self.ctx.limits
        # The worker stops at whichever byte limit charge() would hit first.
        max_bytes = min(
            limits.max_decompressed_bytes,
            max(limits.ratio_floor_bytes, limits.max_compression_ratio * max(self.size, 1)),
            limits.max_file_decompressed_bytes - ctx.inflated,
            limits.max_scan_decompressed_bytes - ctx.scan_inflated,
        )
        return {
            "path": str(path.absolute()),  # not resolve(): /proc/PID/fd/N must stay the pinned file
            "folder": str(self.folder),
            "max_bytes": max(max_bytes, 0),
            "seconds": math.ceil(max(0.0, self.deadline - time.monotonic())) + 1,
        }

    @property
    def size(self) -> int:
        return self.source.size or 0

    def _scan_member(self, event: dict[str, Any]) -> None:
        """Charge and scan one decompressed member, then delete it (the worker writes ahead)."""
        name, number = event.get("member"), event.get("file")
        if not isinstance(name, str) or not isinstance(number, int):
            raise ReaderFailed("7z decoder gave an invalid member report")
        path = self.folder / str(number)
        with path.open("rb") as spool:
            path.unlink()
            self._charge(os.fstat(spool.fileno()).st_size)
            self.ctx.scan(spooled(self.source, name, spool))

    def _charge(self, n: int) -> None:
        limits = self.ctx.limits
        self.total += n
        self.ctx.count_inflated(n)
        check_expansion(
            self.total,
            self.size,
            limits.max_decompressed_bytes,
            limits.max_compression_ratio,
            limits.ratio_floor_bytes,
        )


def _new_worker(memory: int) -> ReaderProcess:
    """The decoder process, reused for every 7z file of a scan while it stays healthy."""
    return ReaderProcess(
        WORKER_SCRIPT,
        memory,
        "7z decoder",
        "decoder hang?",
        "archive not fully analysed",
        max_line=_MAX_LINE,
    )
