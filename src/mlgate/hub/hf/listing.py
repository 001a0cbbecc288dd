"""The JSON documents clients parse: ``ModelInfo`` (``/api/models/{repo}``) and the tree
listing's ``RepoFile`` / ``RepoFolder`` entries (``/api/models/{repo}/tree/{rev}``).

Field names follow ``huggingface_hub.hf_api``'s parsers. Sizes and LFS details of siblings
are given when the client asks (``?blobs=true``, sent for ``files_metadata=True``); every
entry is described as an LFS file (see :mod:`mlgate.hub.hf.entries`).
"""

from __future__ import annotations

import hashlib
from typing import Any

from mlgate.hub.hf.entries import Entry
from mlgate.hub.hf.revisions import Resolved


def model_info(resolved: Resolved, entries: dict[str, Entry], blobs: bool) -> dict[str, Any]:
    """The ``ModelInfo`` document of a served version."""
    version = resolved.version
    org, _, _ = version.model.rpartition("/")
    return {
        "_id": resolved.commit,
        "id": version.model,
        "modelId": version.model,
        "author": org or None,
        "sha": resolved.commit,
        "lastModified": stamp(version.history[-1].at if version.history else version.ingested_at),
        "createdAt": stamp(version.ingested_at),
        "private": True,
        "gated": False,
        "disabled": False,
        "tags": sorted(
            {*version.formats, *([f"license:{version.license}"] if version.license else [])}
        ),
        "siblings": [sibling(e, blobs) for e in entries.values()],
        "mlgate": {"version": version.number, "state": version.state.value, "risk": version.risk},
    }


def sibling(entry: Entry, blobs: bool) -> dict[str, Any]:
    """One file of ``ModelInfo.siblings``."""
    if not blobs:
        return {"rfilename": entry.path}
    return {
        "rfilename": entry.path,
        "size": entry.size,
        "blobId": entry.oid,
        "lfs": {"sha256": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)},
    }


def tree(
    resolved: Resolved, entries: dict[str, Entry], under: str, recursive: bool, expand: bool
) -> list[dict[str, Any]]:
    """The tree entries below folder ``under`` ("" for the root), folders included, in path
    order; empty when ``under`` is neither the root nor a folder of the version."""
    prefix = f"{under}/" if under else ""
    listed: dict[str, dict[str, Any]] = {}
    for path, entry in entries.items():
        if not path.startswith(prefix):
            continue
        parts = path[len(prefix) :].split("/")
        folders = range(1, len(parts)) if recursive else range(1, min(len(parts), 2))
        for depth in folders:
            folder = prefix + "/".join(parts[:depth])
            listed.setdefault(folder, _folder(resolved, folder))
        if recursive or len(parts) == 1:
            listed[path] = _file(resolved, entry, expand)
    return [listed[p] for p in sorted(listed)]


def _file(resolved: Resolved, entry: Entry, expand: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": "file",
        "path": entry.path,
        "size": entry.size,
        "oid": entry.oid,
        "lfs": {"oid": entry.sha256, "size": entry.size, "pointerSize": len(entry.pointer)},
    }
    if expand:
        item["lastCommit"] = last_commit(resolved)
    return item


def _folder(resolved: Resolved, path: str) -> dict[str, Any]:
    # A folder's oid only has to be stable per commit and path.
    oid = hashlib.sha1(f"{resolved.commit}\0{path}".encode(), usedforsecurity=False).hexdigest()
    return {"type": "directory", "path": path, "size": 0, "oid": oid}


def last_commit(resolved: Resolved) -> dict[str, str]:
    """The ``lastCommit`` of every entry: the version itself."""
    version = resolved.version
    at = version.history[-1].at if version.history else version.ingested_at
    return {"id": resolved.commit, "title": version.ref, "date": stamp(at)}


def stamp(at: str) -> str:
    """A registry timestamp (ISO 8601, +00:00) in the Hub's form (``...Z``)."""
    return at.removesuffix("+00:00") + "Z"
