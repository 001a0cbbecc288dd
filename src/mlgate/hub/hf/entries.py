"""What a served version offers for download: its files, and beside them the registry's
signature (``mlgate.sig``, as ``mlgate pull`` writes it), listed, so that a
``snapshot_download`` folder can be checked with ``mlgate verify`` / ``mlgate admit`` like a
pulled one; and its ML-BOM (``mlgate.bom.cdx.json``, CycloneDX JSON), downloadable by name
but not listed, so that a snapshot holds nothing the signature does not cover.

Every entry is served as a Git LFS file would be: its ETag is its SHA-256 (what the client
names its cache blob after) and its git ``oid`` is the SHA-1 of its LFS pointer, derived
from the SHA-256 and the size, so no file is ever re-read to describe it.

Model files are the blob store's files. The two documents are written once, by content,
under ``<data dir>/hub/documents`` so that they are served like blobs (ranges included).
A version holding a file under either name is not served at all: the hub never shadows a
file of the model, nor lets the model pass off its own file as the registry's.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from mlgate.hub.hf.errors import gated
from mlgate.provenance.manifest import HUB_BOM_FILE, PULL_SIGNATURE_FILE
from mlgate.registry.records import Version
from mlgate.registry.service import Registry

SIGNATURE_NAME = PULL_SIGNATURE_FILE
BOM_NAME = HUB_BOM_FILE


@dataclass(frozen=True)
class Entry:
    """One downloadable file: its path in the repo, SHA-256, size and where it is on disk."""

    path: str
    sha256: str
    size: int
    location: Path
    listed: bool = True

    @property
    def pointer(self) -> bytes:
        """The Git LFS pointer file standing for this entry in git."""
        return (
            f"version https://git-lfs.github.com/spec/v1\noid sha256:{self.sha256}\n"
            f"size {self.size}\n"
        ).encode()

    @property
    def oid(self) -> str:
        """The git blob id of the LFS pointer (the ``oid`` / ``blobId`` the Hub reports)."""
        pointer = self.pointer
        blob = b"blob %d\0" % len(pointer) + pointer
        return hashlib.sha1(blob, usedforsecurity=False).hexdigest()


def entries(registry: Registry, version: Version) -> dict[str, Entry]:
    """Every entry of a served ``version`` (with its files), by path in path order."""
    found = {
        f.path: Entry(f.path, f.digest, f.size, registry.blobs.path(f.digest))
        for f in version.files
    }
    for name in (SIGNATURE_NAME, BOM_NAME):
        if name in found:
            raise gated(
                f"{version.ref} holds a file named {name}, where the hub serves the registry's "
                "own document; it is not served (rename the file and ingest a new version)"
            )
    found.update(_DOCUMENTS.of(registry.data_dir / "hub" / "documents", version))
    return dict(sorted(found.items()))


class _DocumentCache:
    """The document entries of recently served versions, keyed by version and signature:
    the BOM is set with the signature when a version is published, so it is serialised and
    hashed once per publication and process, not on every request."""

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[Path, str, str | None], dict[str, Entry]] = OrderedDict()

    def of(self, folder: Path, version: Version) -> dict[str, Entry]:
        key = (folder, version.ref, version.signature)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        documents = {SIGNATURE_NAME: _signature(version), BOM_NAME: _bom(version)}
        made = {
            name: _document(folder, name, data, listed=name != BOM_NAME)
            for name, data in documents.items()
            if data is not None
        }
        with self._lock:
            self._cache[key] = made
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return made


_DOCUMENTS = _DocumentCache()


def listed(found: dict[str, Entry]) -> dict[str, Entry]:
    """The entries a listing shows (siblings, tree): all but the unlisted documents."""
    return {path: e for path, e in found.items() if e.listed}


def _signature(version: Version) -> bytes | None:
    return version.signature.encode() if version.signature else None


def _bom(version: Version) -> bytes | None:
    return json.dumps(version.bom, indent=2).encode() + b"\n" if version.bom else None


def _document(folder: Path, name: str, data: bytes, listed: bool) -> Entry:
    """The entry of a generated document, stored once under its SHA-256."""
    digest = hashlib.sha256(data).hexdigest()
    path = folder / digest[:2] / digest
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{uuid.uuid4().hex}.part")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # atomic: a concurrent worker writes the same bytes
    return Entry(name, digest, len(data), path, listed)
