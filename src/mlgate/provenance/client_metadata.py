"""The Hugging Face client's bookkeeping in a downloaded folder, recognised exactly.

``hf download --local-dir`` and ``snapshot_download(local_dir=...)`` write, beside the model,
``.cache/huggingface/`` holding a ``.gitignore``, a ``CACHEDIR.TAG`` and, per downloaded file,
``download/<file>.metadata`` (commit, etag, time) and ``download/<file>.lock`` (empty), and
``trees/<commit>.json``, the cached listing of the snapshot. No framework loads from there.
The admission gate leaves exactly those files out of the folder it checks; anything else
under that folder (a pickle dropped there, an oversized "metadata") stays in and must be
pinned and signed like any other file.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from glob import escape
from pathlib import Path

HF_CLIENT_METADATA = ".cache/huggingface"
# huggingface_hub writes a commit, an etag and a timestamp: far below this.
_MAX_METADATA_BYTES = 1024
# The listing of a commit: about 200 bytes per file, for up to 100,000 files.
_MAX_TREE_BYTES = 32 << 20
_TOP_FILES = frozenset({".gitignore", "CACHEDIR.TAG"})
_TREE = re.compile(r"[0-9a-f]{40}\.json")
_SUFFIXES = (".metadata", ".lock")


def client_bookkeeping(root: Path) -> list[str]:
    """Root-relative POSIX paths of the client's bookkeeping files in the folder ``root``,
    as fnmatch patterns matching exactly those paths (for ``hash_model``'s ``ignore``)."""
    base = root / HF_CLIENT_METADATA
    if not _is_real_dir(base):
        return []
    found = [
        f"{HF_CLIENT_METADATA}/{name}"
        for name in _TOP_FILES
        if _small_file(base / name, _MAX_METADATA_BYTES)
    ]
    download = base / "download"
    if _is_real_dir(download):
        found += [f"{HF_CLIENT_METADATA}/download/{rel}" for rel in _download_records(download)]
    trees = base / "trees"
    if _is_real_dir(trees):
        found += [f"{HF_CLIENT_METADATA}/trees/{name}" for name in _tree_listings(trees)]
    return [escape(path) for path in sorted(found)]


def _tree_listings(folder: Path) -> Iterator[str]:
    with os.scandir(folder) as it:
        for entry in it:
            if _TREE.fullmatch(entry.name) and _small_file(Path(entry.path), _MAX_TREE_BYTES):
                yield entry.name


def _download_records(folder: Path, prefix: str = "") -> Iterator[str]:
    with os.scandir(folder) as it:
        for entry in sorted(it, key=lambda e: e.name):
            path = Path(entry.path)
            if entry.is_dir(follow_symlinks=False):
                yield from _download_records(path, f"{prefix}{entry.name}/")
            elif entry.name.endswith(_SUFFIXES) and _small_file(path, _MAX_METADATA_BYTES):
                yield prefix + entry.name


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def _small_file(path: Path, limit: int) -> bool:
    """A regular file (not a link) small enough to be what the client writes."""
    try:
        info = path.lstat()
    except OSError:
        return False
    return stat.S_ISREG(info.st_mode) and info.st_size <= limit
