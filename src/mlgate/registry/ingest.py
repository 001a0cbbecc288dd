"""Ingest: stage a source, store its files as blobs, record a quarantined version.

Order matters for crash safety. Blobs are written first (each atomically); the version, its
files and its audit entry are then recorded in one transaction. A process killed before
that commit leaves only unreferenced blobs, which ``registry check`` reports and
``--repair`` removes; killed after it, a complete quarantined record exists. Nothing is
ever recorded half-way.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mlgate.provenance.client_metadata import HF_CLIENT_METADATA
from mlgate.provenance.errors import ProvenanceError
from mlgate.provenance.manifest import (
    HUB_BOM_FILE,
    LOCK_FILE,
    PULL_SIGNATURE_FILE,
    SIGNATURE_FILE,
)
from mlgate.registry.blobs import BlobStore
from mlgate.registry.errors import IngestRefused
from mlgate.registry.sources import (
    SourceError,
    SourceLimits,
    StagedSource,
    parse_source,
)

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?")
_HEAD_BYTES = 512
# A vendor's signature or lock larger than this is recorded, not parsed (bounded on any input).
_MAX_EVIDENCE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class StoredFile:
    """A staged file once it is in the blob store."""

    path: str
    digest: str
    size: int
    format: str


@dataclass(frozen=True)
class Origin:
    """How staged files are recorded when their folder only stands in for the source: an
    upload's session folder on the hub is recorded as the path the uploader sent it from
    (``uri``), with the session as ``tag`` (the version's requested revision), never as the
    hub's scratch space."""

    kind: str
    uri: str
    tag: str


@dataclass(frozen=True)
class HubOptions:
    """How to reach a Hugging Face-compatible hub for ``hf://`` sources."""

    endpoint: str = "https://huggingface.co"
    token: str | None = None


def check_reserved(path: str) -> str:
    """``path`` unless it is a name the registry gives its own documents where it serves a
    version (pull, hub), or in the HF client's bookkeeping folder its signatures ignore: a
    model file there would be shadowed, or pass itself off as the registry's, or go unsigned.
    :class:`SourceError` naming the file otherwise."""
    if path in (PULL_SIGNATURE_FILE, HUB_BOM_FILE):
        raise SourceError(
            f"it holds {path}, the name the registry serves its own "
            f"{'signature' if path == PULL_SIGNATURE_FILE else 'ML-BOM'} under; "
            "rename that file"
        )
    if path.startswith(HF_CLIENT_METADATA + "/"):
        raise SourceError(
            f"it holds {path}: {HF_CLIENT_METADATA}/ is the Hugging Face client's "
            "bookkeeping, which signatures ignore; remove it"
        )
    return path


def stage(spec: str, hub: HubOptions, staging_root: Path, limits: SourceLimits) -> StagedSource:
    """Validate and fetch the source named by ``spec`` (a path or ``hf://org/name@rev``)."""
    kind, args = parse_source(spec)
    staging: Path | None = None
    try:
        if kind == "local":
            from mlgate.registry.sources.local import stage_local  # noqa: PLC0415

            staged = stage_local(Path(args["path"]), limits)
        else:
            staging = staging_root / uuid.uuid4().hex
            staging.mkdir(parents=True)
            from mlgate.registry.sources.huggingface import stage_huggingface  # noqa: PLC0415

            staged = stage_huggingface(
                hub.endpoint,
                args["repo_id"],
                args["revision"],
                staging=staging,
                token=hub.token,
                limits=limits,
                repo_type=args["repo_type"],
            )
        if not staged.files:  # fail closed: an empty version would be scanned "clean"
            raise SourceError("it has no files")
        for f in staged.files:
            check_reserved(f.path)
    except BaseException as e:
        # The source removes what it downloaded, not the folder made for it here.
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)
        if isinstance(e, SourceError):
            raise IngestRefused(f"cannot ingest {spec}: {e}") from e
        raise
    return staged


def default_name(staged: StagedSource) -> str:
    """The model's name when none is given: the repo id, else the file or folder name."""
    if staged.repo_id:
        return staged.repo_id
    path = Path(staged.uri)
    return path.stem if staged.single_file else path.name


def check_name(name: str) -> str:
    """Model names are ``name`` or ``org/name`` of letters, digits, ``.``, ``_``, ``-``."""
    if len(name) > 200 or not _NAME.fullmatch(name) or ".." in name:
        raise IngestRefused(
            f"invalid model name {name!r}: use letters, digits, '.', '_', '-' "
            "and at most one '/' (org/name)"
        )
    return name


def store_files(staged: StagedSource, blobs: BlobStore) -> list[StoredFile]:
    """Copy every staged file into the blob store, checking it did not change meanwhile."""
    stored = []
    for item in staged.files:
        blob = blobs.put_file(item.local, max_bytes=item.size)
        if blob.size != item.size:
            raise IngestRefused(f"{item.path} changed while it was being stored; try again")
        if item.expected_sha256 and blob.digest != item.expected_sha256:
            raise IngestRefused(f"{item.path}: content does not match the hub's SHA-256")
        fmt = _format(blobs, blob.digest, item.path)
        stored.append(StoredFile(item.path, blob.digest, blob.size, fmt))
    return stored


def _format(blobs: BlobStore, digest: str, name: str) -> str:
    """First guess from the content; the scan replaces it with what it found."""
    from mlgate.scan.sniff import sniff  # noqa: PLC0415  (scan engine loads lazily)

    with blobs.path(digest).open("rb") as f:
        head = f.read(_HEAD_BYTES)
    if not head:
        return "empty"
    return sniff(head, name).value


def content_digest(files: Sequence[StoredFile]) -> str:
    """One digest for a version's content: SHA-256 of its sorted (path, digest, size) list."""
    h = hashlib.sha256()
    for f in sorted(files, key=lambda f: f.path):
        h.update(f"{f.path}\0{f.digest}\0{f.size}\n".encode())
    return h.hexdigest()


def discard_staging(staged: StagedSource, staging_root: Path) -> None:
    """Remove a hub download's staging copy once its blobs are stored."""
    if staged.kind == "local" or not staged.files:
        return
    first = staged.files[0]
    top = first.local
    for _ in Path(first.path).parts:
        top = top.parent
    if top.parent == staging_root:
        shutil.rmtree(top, ignore_errors=True)


def read_license(view: Path) -> str | None:
    """The licence the model card or config declares, if any (nothing is executed)."""
    from mlgate.bom.model_card import read_model_card  # noqa: PLC0415

    try:
        return read_model_card(view).license
    except (OSError, ValueError):
        return None


def formats_json(files: Sequence[StoredFile]) -> str:
    """The distinct formats of a version, as stored."""
    return json.dumps(sorted({f.format for f in files}))


def vendor_evidence(stored: Sequence[StoredFile], blobs: BlobStore) -> dict[str, str]:
    """What a ``model.sig`` or ``mlgate.lock`` shipped at the model's root says of the stored
    content. Both stay content (pull writes them back untouched); without the vendor's key
    this is integrity evidence only: does what they pin match what was ingested?"""
    digests = {f.path: f.digest for f in stored}
    sizes = {f.path: f.size for f in stored}
    found: dict[str, str] = {}
    for name in (LOCK_FILE, SIGNATURE_FILE):
        if name not in digests:
            continue
        if sizes[name] > _MAX_EVIDENCE_BYTES:
            found[name] = f"not compared: larger than {_MAX_EVIDENCE_BYTES} bytes"
            continue
        content = {p: d for p, d in digests.items() if p != name}
        try:
            problems = _evidence_problems(name, blobs.path(digests[name]), content)
        except (OSError, UnicodeDecodeError, ProvenanceError) as e:
            found[name] = f"unreadable: {e}"
            continue
        found[name] = (
            "matches the content (not authenticated)"
            if not problems
            else f"differs: {'; '.join(problems[:5])}"
        )
    return found


def _evidence_problems(name: str, path: Path, content: dict[str, str]) -> list[str]:
    from mlgate.provenance import oms  # noqa: PLC0415
    from mlgate.provenance.lock import read_lock  # noqa: PLC0415
    from mlgate.provenance.signing import compare  # noqa: PLC0415

    if name == LOCK_FILE:
        lock = read_lock(path)
        if lock.algorithm != "sha256" or lock.shard_size is not None:
            return [f"not compared: pinned with {lock.algorithm}"]
        return [f"changed: {f.path}" for f in lock.files if content.get(f.path) != f.digest]
    bundle = oms.parse_bundle(path.read_text(encoding="utf-8"), name)
    statement = oms.decode_statement(bundle.payload, name)
    if statement.serialization.hash_type != "sha256":
        return [f"not compared: hashed with {statement.serialization.hash_type}"]
    ignored = statement.serialization.ignore_paths
    actual = [
        oms.Resource(p, "sha256", d)
        for p, d in content.items()
        if not any(p == i or p.startswith(i + "/") for i in ignored)
    ]
    return compare(statement.resources, actual)
