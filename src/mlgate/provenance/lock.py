"""Hash-pin lock files (``mlgate.lock``): what a model must contain, byte for byte.

The lock is readable TOML::

    version = 1

    [model]
    name = "org/model"
    source = "https://huggingface.co/org/model"
    revision = "0123abcd..."

    [hashing]
    algorithm = "sha256"
    shard_size = 1073741824      # only when the manifest was sharded
    ignore = ["*.md"]            # user ignore patterns, re-applied on verification

    [[files]]
    path = "model.safetensors"
    digest = "..."
    size = 123
"""

from __future__ import annotations

import glob
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

import tomli_w

from mlgate.provenance.errors import LockError, LockMismatch
from mlgate.provenance.manifest import ALGORITHMS, FileDigest, Manifest, hash_model

LOCK_VERSION = 1
_T = TypeVar("_T")
DifferenceKind = Literal["added", "removed", "renamed", "changed"]


@dataclass(frozen=True)
class Lock:
    """The content of a lock file."""

    name: str
    source: str
    revision: str
    algorithm: str
    files: tuple[FileDigest, ...]
    shard_size: int | None = None
    ignore: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class Difference:
    """One way a model differs from its lock. ``old_path`` is set for renames only."""

    kind: DifferenceKind
    path: str
    old_path: str | None = None

    def __str__(self) -> str:
        if self.kind == "renamed":
            return f"renamed: {self.old_path} -> {self.path}"
        what = {"added": "not in the lock", "removed": "missing", "changed": "content changed"}
        return f"{self.kind}: {self.path} ({what[self.kind]})"


def write_lock(
    manifest: Manifest,
    path: Path,
    name: str = "",
    source: str = "",
    revision: str = "",
    ignore: Sequence[str] = (),
) -> Lock:
    """Write ``manifest`` as a lock file at ``path``; returns what was written.

    ``ignore`` should be the user patterns the manifest was made with, so that verification
    applies them again. ``name`` defaults to the model's folder or file name.
    """
    lock = Lock(
        name=name or manifest.root.resolve().name,
        source=source,
        revision=revision,
        algorithm=manifest.algorithm,
        files=manifest.files,
        shard_size=manifest.shard_size,
        ignore=tuple(ignore),
    )
    try:
        Path(path).write_text(tomli_w.dumps(_to_toml(lock)), encoding="utf-8")
    except OSError as e:
        raise LockError(f"cannot write lock file {path}: {e.strerror or e}") from e
    return lock


def read_lock(path: Path) -> Lock:
    """Read and validate a lock file; :class:`LockError` says what is wrong with it."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise LockError(f"cannot read lock file {path}: {e.strerror or e}") from e
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise LockError(f"lock file {path} is not valid TOML: {e}") from e
    try:
        return _from_toml(data)
    except (KeyError, TypeError, ValueError) as e:
        raise LockError(f"lock file {path} is malformed: {e}") from e


def compare(lock: Lock, manifest: Manifest) -> list[Difference]:
    """Every difference between ``lock`` and ``manifest``, sorted by path.

    A removed and an added file with the same digest (and size) are reported as one rename.
    """
    if lock.algorithm != manifest.algorithm or lock.shard_size != manifest.shard_size:
        raise LockMismatch(
            f"the lock was made with {_describe(lock.algorithm, lock.shard_size)}, the manifest "
            f"with {_describe(manifest.algorithm, manifest.shard_size)}; hash again to compare"
        )
    locked = {f.path: f for f in lock.files}
    actual = manifest.by_path()
    diffs = [
        Difference("changed", p)
        for p in locked.keys() & actual.keys()
        if (locked[p].digest, locked[p].size) != (actual[p].digest, actual[p].size)
    ]
    removed = sorted(locked.keys() - actual.keys())
    added = sorted(actual.keys() - locked.keys())
    # Pair renames one to one, so that two copies of a file renamed at once stay accounted for.
    by_content: dict[tuple[str, int], list[str]] = {}
    for p in added:
        by_content.setdefault((actual[p].digest, actual[p].size), []).append(p)
    for p in removed:
        candidates = by_content.get((locked[p].digest, locked[p].size))
        if candidates:
            diffs.append(Difference("renamed", candidates.pop(0), old_path=p))
        else:
            diffs.append(Difference("removed", p))
    diffs.extend(Difference("added", p) for ps in by_content.values() for p in ps)
    return sorted(diffs, key=lambda d: (d.path.encode("utf-8", "surrogateescape"), d.kind))


def verify_lock(
    model: Path, lock_path: Path, allow_symlinks: bool = False, workers: int | None = None
) -> list[Difference]:
    """Hash ``model`` the way its lock was made and compare; an empty list means verified.

    A lock kept inside the model cannot pin itself: its own path is left out.
    """
    lock = read_lock(lock_path)
    manifest = hash_model(
        model,
        algorithm=lock.algorithm,
        ignore=(*lock.ignore, *lock_ignore(Path(lock_path), Path(model))),
        allow_symlinks=allow_symlinks,
        workers=workers,
        shard_size=lock.shard_size,
    )
    return compare(lock, manifest)


def lock_ignore(lock_path: Path, model: Path) -> tuple[str, ...]:
    """The lock's own path as an ignore pattern when it lies inside the model folder: a lock
    cannot pin itself."""
    try:
        rel = lock_path.resolve().relative_to(model.resolve())
    except ValueError:
        return ()
    return (glob.escape(rel.as_posix()),) if model.is_dir() else ()


def _describe(algorithm: str, shard_size: int | None) -> str:
    return algorithm + (f" in shards of {shard_size} bytes" if shard_size else "")


def _to_toml(lock: Lock) -> dict[str, Any]:
    hashing: dict[str, Any] = {"algorithm": lock.algorithm}
    if lock.shard_size is not None:
        hashing["shard_size"] = lock.shard_size
    if lock.ignore:
        hashing["ignore"] = list(lock.ignore)
    files: list[dict[str, Any]] = []
    for f in lock.files:
        entry: dict[str, Any] = {"path": f.path, "digest": f.digest, "size": f.size}
        if f.shard_size is not None:
            entry["shard_size"] = f.shard_size
        files.append(entry)
    return {
        "version": LOCK_VERSION,
        "model": {"name": lock.name, "source": lock.source, "revision": lock.revision},
        "hashing": hashing,
        "files": files,
    }


def _from_toml(data: dict[str, Any]) -> Lock:
    if data.get("version") != LOCK_VERSION:
        raise ValueError(f"unsupported version {data.get('version')!r} (expected {LOCK_VERSION})")
    model = data.get("model", {})
    hashing = data["hashing"]
    algorithm = _typed(hashing["algorithm"], str, "hashing.algorithm")
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unknown algorithm {algorithm!r}")
    shard_size = hashing.get("shard_size")
    if shard_size is not None:
        _typed(shard_size, int, "hashing.shard_size")
    files = tuple(
        FileDigest(
            path=_typed(f["path"], str, "files.path"),
            algorithm=algorithm,
            digest=_typed(f["digest"], str, "files.digest").lower(),
            size=_typed(f["size"], int, "files.size"),
            shard_size=f.get("shard_size"),
        )
        for f in data.get("files", [])
    )
    if len({f.path for f in files}) != len(files):
        raise ValueError("a file is listed twice")
    return Lock(
        name=str(model.get("name", "")),
        source=str(model.get("source", "")),
        revision=str(model.get("revision", "")),
        algorithm=algorithm,
        files=files,
        shard_size=shard_size,
        ignore=tuple(_typed(p, str, "hashing.ignore") for p in hashing.get("ignore", [])),
    )


def _typed(value: object, kind: type[_T], where: str) -> _T:
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{where} must be {kind.__name__}, got {value!r}")
    return value
