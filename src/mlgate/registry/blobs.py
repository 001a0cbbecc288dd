"""Content-addressed blob store: every stored file lives once, named by its SHA-256.

A blob is copied and hashed in one pass into a temporary file in the store, flushed to disk
(``fsync``), then renamed to its digest path and the folder fsynced: a blob is either absent
or complete, never half-visible, and two ingests of the same bytes store it once. Blobs are
made read-only so the hard-linked views handed to the scanner cannot alter them.
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from mlgate.registry.errors import RegistryError

_CHUNK = 1024 * 1024
_DIGEST = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class StoredBlob:
    """A blob written (or found already present) in the store."""

    digest: str
    size: int


class BlobStore:
    """Blobs under ``root/sha256/ab/abcdef...``; temporary files under ``root/tmp``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._objects = root / "sha256"
        self._tmp = root / "tmp"

    def ensure(self) -> None:
        """Create the store's folders."""
        self._objects.mkdir(parents=True, exist_ok=True)
        self._tmp.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        """Where the blob ``digest`` lives (whether or not it exists)."""
        if not _DIGEST.fullmatch(digest):
            raise RegistryError(f"not a SHA-256 digest: {digest!r}")
        return self._objects / digest[:2] / digest

    def exists(self, digest: str) -> bool:
        """True when the blob is present."""
        return self.path(digest).is_file()

    def put_file(self, source: Path, max_bytes: int | None = None) -> StoredBlob:
        """Copy ``source`` into the store, hashing as it goes; return its digest and size."""
        self.ensure()
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            digest, size = _copy_hashing(source, tmp, max_bytes, sole_name=True)
            self._publish(tmp, digest)
        except OSError as e:
            raise RegistryError(f"cannot store {source}: {e.strerror or e}") from e
        finally:
            tmp.unlink(missing_ok=True)
        return StoredBlob(digest, size)

    def _publish(self, tmp: Path, digest: str) -> None:
        final = self.path(digest)
        if final.is_file():
            return  # identical content is stored once
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
        os.replace(tmp, final)
        _fsync_dir(final.parent)

    def verify(self, digest: str) -> bool:
        """Re-hash a blob and say whether its content still matches its name."""
        h = hashlib.sha256()
        with self.path(digest).open("rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        return h.hexdigest() == digest

    def digests(self) -> Iterator[str]:
        """Every blob present in the store."""
        if not self._objects.is_dir():
            return
        for sub in sorted(self._objects.iterdir()):
            for blob in sorted(sub.iterdir()):
                if _DIGEST.fullmatch(blob.name):
                    yield blob.name

    def temporaries(self) -> list[Path]:
        """Leftovers of interrupted writes."""
        return sorted(self._tmp.glob("*.part")) if self._tmp.is_dir() else []

    def remove(self, digest: str) -> None:
        """Delete a blob (only orphans are ever removed, by ``registry check --repair``)."""
        self.path(digest).unlink(missing_ok=True)

    def link_view(self, digest: str, target: Path) -> None:
        """Make ``target`` show the blob's content: a hard link, or a copy across devices."""
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(self.path(digest), target)
        except OSError:
            _copy_hashing(self.path(digest), target, None)


def _copy_hashing(
    source: Path, target: Path, max_bytes: int | None, sole_name: bool = False
) -> tuple[str, int]:
    """Copy and hash through one descriptor. The checks on what it opened (a regular file;
    with ``sole_name``, not a hard link) hold for the bytes read, even if the path was swapped
    for a FIFO or a hard link after the source was staged. O_NONBLOCK: a FIFO never blocks."""
    h = hashlib.sha256()
    size = 0
    buffer = bytearray(_CHUNK)
    view = memoryview(buffer)
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
    src_fd = os.open(source, flags)
    try:
        st = os.fstat(src_fd)
        if not stat.S_ISREG(st.st_mode):
            raise RegistryError(f"{source} is not a regular file (fifo, socket or device)")
        if sole_name and st.st_nlink > 1:
            raise RegistryError(f"{source} became a hard link ({st.st_nlink} names) while staged")
        with open(src_fd, "rb", buffering=0, closefd=False) as src, target.open("xb") as dst:
            while n := src.readinto(buffer):
                size += n
                if max_bytes is not None and size > max_bytes:
                    raise RegistryError(f"{source} grew beyond {max_bytes} bytes while stored")
                h.update(view[:n])
                dst.write(view[:n])
            dst.flush()
            os.fsync(dst.fileno())
    finally:
        os.close(src_fd)
    return h.hexdigest(), size


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def copy_verified(source: Path, target: Path, digest: str) -> None:
    """Copy a blob out, failing (and removing the copy) if its content does not match."""
    tmp = target.with_name(target.name + ".part")
    try:
        actual, _ = _copy_hashing(source, tmp, None)
        if actual != digest:
            raise RegistryError(
                f"blob {digest[:16]} is corrupt (content hashes to "
                f"{actual[:16]}): run `mlgate registry check`"
            )
        os.replace(tmp, target)
    except OSError as e:
        raise RegistryError(f"cannot write {target}: {e.strerror or e}") from e
    finally:
        tmp.unlink(missing_ok=True)
