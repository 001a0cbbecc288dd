"""Upload sessions: a model's files sent to the hub one by one, then ingested as one version.

``mlgate ingest ./folder --hub URL`` cannot hand the hub a path: the files are on the
client's machine. It opens a session, sends each file (``PUT``, streamed to disk, never held
in memory) and commits; a worker then ingests the session's folder as the uploader
(:func:`mlgate.hub.intake_jobs.ingest_upload`) and removes it.

Every name goes through the checks a local ingest applies (``check_rel_path``, the reserved
names, :class:`NameSet` collisions, :class:`Budget` counts) when its ``PUT`` arrives, so
nothing the registry would refuse reaches the folder; sizes are bounded per file and per
session, before reading when ``Content-Length`` says so, else while streaming.

State lives in files, no table: ``<data dir>/uploads/<id>/`` holds ``manifest.json``
(uploader, model name, created, committed, each file's size and SHA-256; replaced
atomically), ``files/`` (received files, verified) and ``partial/`` (files being received).
Changes take an ``flock`` on the session's ``lock`` file: several uvicorn workers may serve
one session. Only the uploader may add to, commit or discard a session. Sessions older than
:data:`MAX_AGE` (abandoned, or committed with no worker to ingest them) are removed whenever
a session is created: no periodic task is needed, and what a user leaves behind is bounded
by ``max_open`` sessions of ``max_total_bytes``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import anyio.to_thread

from mlgate.hub.settings import API_PREFIX
from mlgate.registry.errors import IngestRefused, NotFound, PermissionDenied, TransitionRefused
from mlgate.registry.ingest import check_reserved
from mlgate.registry.sources.base import (
    DEFAULT_LIMITS,
    Budget,
    NameSet,
    SourceError,
    SourceLimits,
    check_rel_path,
)

UPLOADS_DIR = "uploads"
MAX_AGE = timedelta(days=1)
SESSION_PATTERN = r"^[0-9a-f]{32}$"
# The one route whose body is not capped by the hub's request limit (it has its own).
FILE_ROUTE = re.compile(rf"{re.escape(API_PREFIX)}/uploads/[0-9a-f]{{32}}/files/.")
_BLOCK = 1024 * 1024  # bytes received before a write (in a thread: the event loop goes on)
_MANIFEST, _LOCK, _FILES, _PARTIAL = "manifest.json", "lock", "files", "partial"
_REMOVED = ".removed-"


class UploadTooLarge(IngestRefused):
    """A file or session over the hub's upload limits (HTTP 413)."""


@dataclass(frozen=True)
class Manifest:
    """A session as ``manifest.json`` records it."""

    id: str
    uploader: str
    name: str
    owner: str | None
    scan: bool
    origin: str | None  # where the uploader says the files come from (their path)
    created_at: str
    committed: bool = False
    files: Mapping[str, Received] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files.values())

    def to_json(self) -> dict[str, Any]:
        body = {k: v for k, v in vars(self).items() if k != "files"}
        return {**body, "files": {p: vars(f) for p, f in sorted(self.files.items())}}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Manifest:
        files = {
            str(p): Received(int(f["size"]), str(f["sha256"])) for p, f in data["files"].items()
        }
        return cls(**{**data, "files": files})

    def summary(self) -> dict[str, Any]:
        """The session as the API shows it (file names left out: a count and a size)."""
        body = {k: v for k, v in vars(self).items() if k != "files"}
        return {**body, "file_count": len(self.files), "size": self.size}


@dataclass(frozen=True)
class Incoming:
    """A file being received: where it goes meanwhile, and how large it may be."""

    upload: str
    uploader: str
    path: str
    partial: Path
    room: int
    limits: SourceLimits


@dataclass(frozen=True)
class Received:
    """One file of a session: its size and SHA-256, as received."""

    size: int
    sha256: str


class UploadStore:
    """The upload sessions under ``root`` (``<data dir>/uploads``)."""

    def __init__(self, root: Path, limits: SourceLimits = DEFAULT_LIMITS, max_open: int = 16):
        self.root = root
        self.limits = limits
        self.max_open = max_open

    def create(
        self, uploader: str, name: str, *, owner: str | None, scan: bool, origin: str | None
    ) -> Manifest:
        """A new, empty session of ``uploader`` (stale sessions are removed first)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with _flock(self.root / _LOCK):
            self.sweep()
            open_ones = [m for m in self._manifests() if m.uploader == uploader]
            if len(open_ones) >= self.max_open:
                raise IngestRefused(
                    f"{uploader} has {len(open_ones)} upload sessions open (limit "
                    f"{self.max_open}): commit or delete one first"
                )
            upload = secrets.token_hex(16)
            folder = self.root / upload
            (folder / _FILES).mkdir(parents=True)
            (folder / _PARTIAL).mkdir()
            (folder / _LOCK).touch()
            created = datetime.now(UTC).isoformat(timespec="seconds")
            manifest = Manifest(upload, uploader, name, owner, scan, origin, created)
            _write(folder, manifest)
        return manifest

    async def receive(
        self,
        upload: str,
        uploader: str,
        path: str,
        chunks: AsyncIterator[bytes],
        *,
        declared: int | None = None,
        sha256: str | None = None,
    ) -> Received:
        """Stream ``chunks`` (``declared`` bytes, if the client said) into the session as
        ``path``; the SHA-256 (checked against ``sha256`` when given) is computed on the
        way. Nothing is kept on failure."""
        incoming = await anyio.to_thread.run_sync(self._start, upload, uploader, path, declared)
        try:
            received = await _stream(incoming, chunks)
            if sha256 is not None and received.sha256 != sha256:
                raise IngestRefused(
                    f"{path}: the content received does not match X-Content-SHA256 "
                    f"(got {received.sha256}); send it again"
                )
            return await anyio.to_thread.run_sync(self._finish, incoming, received)
        finally:
            incoming.partial.unlink(missing_ok=True)

    def _start(self, upload: str, uploader: str, path: str, declared: int | None) -> Incoming:
        """Get ready to receive ``path`` (``declared`` bytes, if the client said)."""
        try:
            check_reserved(check_rel_path(path, self.limits))
        except SourceError as e:
            raise IngestRefused(f"cannot upload {path!r}: {e}") from e
        with self._session(upload, uploader) as (folder, manifest):
            room = self._admit(manifest, path, declared or 0)
        partial = folder / _PARTIAL / secrets.token_hex(8)
        return Incoming(upload, uploader, path, partial, room, self.limits)

    def _finish(self, incoming: Incoming, received: Received) -> Received:
        """Move a received file into the session and record it, if it still fits."""
        path = incoming.path
        with self._session(incoming.upload, incoming.uploader) as (folder, manifest):
            self._admit(manifest, path, received.size)
            target = folder / _FILES / path
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(incoming.partial, target)
            _write(folder, replace(manifest, files={**manifest.files, path: received}))
        return received

    def commit(self, upload: str, uploader: str) -> Manifest:
        """Close the session to changes: it is ingested as it is (again: the same)."""
        with self._session(upload, uploader, committed_ok=True) as (folder, manifest):
            if not manifest.files:
                raise IngestRefused(f"upload {upload} has no files: nothing to ingest")
            if not manifest.committed:
                _write(folder, replace(manifest, committed=True))
        return replace(manifest, committed=True)

    def discard(self, upload: str, uploader: str) -> Manifest:
        """Remove a session that is not committed, with its files."""
        with self._session(upload, uploader) as (folder, manifest):
            self._remove(folder)
        return manifest

    def committed(self, upload: str) -> tuple[Manifest, Path]:
        """A committed session and the folder of its files (for its ingest job)."""
        with self._session(upload, None, committed_ok=True) as (folder, manifest):
            if not manifest.committed:
                raise TransitionRefused(f"upload {upload} is not committed")
        return manifest, folder / _FILES

    def remove(self, upload: str) -> None:
        """Remove a session, whatever its state (its ingest job is done)."""
        try:
            with self._session(upload, None, committed_ok=True) as (folder, _):
                self._remove(folder)
        except NotFound:
            return

    def sweep(self, now: datetime | None = None) -> list[str]:
        """Remove the sessions created more than :data:`MAX_AGE` ago; their ids."""
        limit = (now or datetime.now(UTC)) - MAX_AGE
        stale = []
        for entry in self.root.iterdir():
            if entry.name.startswith(_REMOVED):
                shutil.rmtree(entry, ignore_errors=True)  # a removal cut short
            elif entry.is_dir() and _created(entry) < limit:
                self.remove(entry.name)
                stale.append(entry.name)
        return stale

    def _manifests(self) -> Iterator[Manifest]:
        for entry in self.root.iterdir():
            if re.fullmatch(SESSION_PATTERN, entry.name):
                try:
                    yield _read(entry)
                except NotFound:
                    continue

    def _folder(self, upload: str) -> Path:
        if not re.fullmatch(SESSION_PATTERN, upload):
            raise NotFound(f"no upload session {upload!r}")
        return self.root / upload

    @contextmanager
    def _session(
        self, upload: str, uploader: str | None, *, committed_ok: bool = False
    ) -> Iterator[tuple[Path, Manifest]]:
        """The session's folder and manifest, locked; ``uploader`` must own it (None: the
        system), and it must still be open unless ``committed_ok``."""
        folder = self._folder(upload)
        with ExitStack() as stack:
            try:
                stack.enter_context(_flock(folder / _LOCK, create=False))
            except FileNotFoundError:
                raise NotFound(f"no upload session {upload}") from None
            manifest = _read(folder)  # removed while we waited for the lock: gone
            if uploader is not None and manifest.uploader != uploader:
                raise PermissionDenied(f"upload session {upload} belongs to another user")
            if manifest.committed and not committed_ok:
                raise TransitionRefused(f"upload {upload} is committed: it can no longer change")
            yield folder, manifest

    def _admit(self, manifest: Manifest, path: str, size: int) -> int:
        """The bytes ``path`` may have in ``manifest`` (it replaces a file of that name);
        refused when ``size`` is over that (413), or by the count and name-collision checks
        a local ingest makes (422)."""
        others = {p: f for p, f in manifest.files.items() if p != path}
        left = self.limits.max_total_bytes - sum(f.size for f in others.values())
        room = max(0, min(self.limits.max_file_bytes, left))
        if size > room:
            raise too_large(path, room, self.limits)
        budget, names = Budget(self.limits), NameSet()
        try:
            for name, received in [*others.items(), (path, Received(size, ""))]:
                budget.add(name, received.size)
                names.add(name)
        except SourceError as e:
            raise IngestRefused(f"cannot upload {path!r}: {e}") from e
        return room

    def _remove(self, folder: Path) -> None:
        """Rename first (atomic: no request sees half a session), then delete."""
        gone = folder.with_name(_REMOVED + folder.name)
        os.replace(folder, gone)
        shutil.rmtree(gone, ignore_errors=True)


@contextmanager
def _flock(path: Path, *, create: bool = True) -> Iterator[None]:
    """An exclusive ``flock`` on ``path`` for the block (across processes)."""
    fd = os.open(path, os.O_RDWR | (os.O_CREAT if create else 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


async def _stream(incoming: Incoming, chunks: AsyncIterator[bytes]) -> Received:
    """Write ``chunks`` to ``incoming.partial`` a block at a time, hashing them; refused as
    soon as they pass ``incoming.room`` bytes."""
    digest, size, block = hashlib.sha256(), 0, bytearray()
    with incoming.partial.open("xb") as out:
        async for chunk in chunks:
            size += len(chunk)
            if size > incoming.room:
                raise too_large(incoming.path, incoming.room, incoming.limits)
            block += chunk
            if len(block) >= _BLOCK:
                await anyio.to_thread.run_sync(_append, out, digest, block)
                block.clear()
        await anyio.to_thread.run_sync(_append, out, digest, block)
    return Received(size, digest.hexdigest())


def too_large(path: str, room: int, limits: SourceLimits) -> UploadTooLarge:
    return UploadTooLarge(
        f"{path} is over the upload limits: {room} bytes left for it (per file "
        f"{limits.max_file_bytes}, per session {limits.max_total_bytes})"
    )


def _append(out: BinaryIO, digest: Any, block: bytearray) -> None:
    digest.update(block)
    out.write(block)


def _read(folder: Path) -> Manifest:
    try:
        data = json.loads((folder / _MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise NotFound(f"no upload session {folder.name}") from None
    return Manifest.from_json(data)


def _write(folder: Path, manifest: Manifest) -> None:
    """Replace the manifest atomically: a reader sees the old one or the new one."""
    temporary = folder / f"{_MANIFEST}.{secrets.token_hex(4)}"
    temporary.write_text(json.dumps(manifest.to_json()), encoding="utf-8")
    os.replace(temporary, folder / _MANIFEST)


def _created(folder: Path) -> datetime:
    """When a session was created (its folder's change time when it has no manifest)."""
    try:
        return datetime.fromisoformat(_read(folder).created_at)
    except NotFound:
        return datetime.fromtimestamp(folder.stat().st_mtime, UTC)
