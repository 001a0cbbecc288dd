"""The Hugging Face cache layout, so a cached model is scanned as the model it is.

``huggingface_hub`` stores a repo as ``models--org--name/`` holding ``blobs/<hash>`` (the
contents), ``snapshots/<commit>/<file name>`` (relative symbolic links into ``../../blobs/``)
and ``refs/<branch>`` (the commit a branch names). A loader opens the snapshot's names, so the
scan reads each blob under its snapshot name (format checks, extension checks and
``from_pretrained``'s view all need the name, never the hash).

Exactly that layout is trusted: a link in a snapshot is followed only when it resolves to a
regular file directly in the ``blobs/`` folder of the same repo. Any other link in a snapshot
(to another repo's blobs, to ``refs/``, out of the cache) stays a path-traversal finding: a
poisoned cache must not borrow the trust a real one gets.

Scanning the repo folder ``models--org--name`` scans every snapshot in it: ``revision=``
lets a loader open any cached commit, not only the one ``refs/main`` names today. ``blobs/``
is reached through the snapshots; ``refs/`` (commit ids) and ``.no_exist/`` (empty markers of
files the hub does not have) hold nothing a loader reads, so they are not walked.
"""

from __future__ import annotations

import re
from pathlib import Path

# models--org--name (and the dataset and space caches, laid out the same way).
_REPO_FOLDER = re.compile(r"(?:models|datasets|spaces)--.+")
_COMMIT = re.compile(r"[0-9a-f]{40}")
# What a repo cache folder holds besides its snapshots, reached through them or never loaded.
NOT_WALKED = frozenset({"blobs", "refs", ".no_exist"})


def is_repo_cache(folder: Path) -> bool:
    """True when ``folder`` is one repo of a Hugging Face cache (``models--org--name``)."""
    return bool(_REPO_FOLDER.fullmatch(folder.name)) and all(
        (folder / sub).is_dir() and not (folder / sub).is_symlink()
        for sub in ("snapshots", "blobs")
    )


def snapshot_repo(link: Path) -> Path | None:
    """The repo cache folder when ``link`` lies in one of its snapshots
    (``models--org--name/snapshots/<commit>/...``), else None."""
    folder = link.parent.resolve()
    for snapshot in (folder, *folder.parents):
        parent = snapshot.parent
        if (
            _COMMIT.fullmatch(snapshot.name)
            and parent.name == "snapshots"
            and is_repo_cache(parent.parent)
        ):
            return parent.parent
    return None


def cache_blob(link: Path, repo: Path) -> Path | None:
    """The blob ``link`` (in a snapshot of ``repo``) points at, when it is a regular file
    directly in ``repo/blobs/``; None for any other target (refused by the caller)."""
    try:
        target = link.resolve(strict=True)
        blobs = (repo / "blobs").resolve(strict=True)
    except (OSError, RuntimeError):  # dangling, unreadable, or a loop of links
        return None
    if target.parent != blobs or target.is_symlink() or not target.is_file():
        return None
    return target
