"""Per-file digests of a model file or folder: the manifest every provenance check builds on.

Files are streamed in 128 KiB chunks into one reused buffer per worker thread, so memory stays
flat whatever the file sizes. Files (and shards of very large files) are hashed in parallel on
a thread pool: hashlib and blake3 release the GIL on large updates, so threads use every core.

Sharded digests (only when ``shard_size`` is given and a file is larger than it):
the file is cut into consecutive shards of ``shard_size`` bytes (the last one shorter), each
shard is hashed on its own with the manifest's algorithm, and the file digest is

    H(b"mlgate-shards-v1\\0" || u64be(shard_size) || u64be(file size) || d_0 || d_1 || ...)

where ``d_i`` are the raw (binary) shard digests in file order and ``H`` is the same algorithm.
The prefix and the two sizes keep a sharded digest from ever equalling a plain one or one made
with another shard size. Such files carry ``shard_size`` in their :class:`FileDigest`.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import Protocol

from mlgate.provenance.errors import ProvenanceError, SymlinkRefused
from mlgate.provenance.oms import GIT_PATHS

ALGORITHMS = ("sha256", "blake2b", "blake3")
# Measured on the 2-core bench VM: reads of <= 128 KiB from the page cache copy at ~9 GB/s,
# reads of >= 256 KiB at ~2.5 GB/s (a cold 1-8 MiB buffer cost +1.3 s of system time per
# 4 GB). 128 KiB is still large enough for hashlib to release the GIL on every update.
CHUNK_SIZE = 128 * 1024
SIGNATURE_FILE = "model.sig"
LOCK_FILE = "mlgate.lock"
# The registry's signature in a pulled folder: its own name, so that a vendor's model.sig (or
# mlgate.lock) shipped inside the model stays there as content, covered by this signature.
PULL_SIGNATURE_FILE = "mlgate.sig"
# The default ignore rules, all at the root only: the git paths model_signing's hashing.Config
# ignores by default (``ignore_git_paths``: .git/, .gitattributes, .github/, .gitignore at the
# model root, never deeper), and the model's signature (it cannot pin itself). A nested
# ``sub/.git/`` is model content: a pickle hidden there is hashed.
_IGNORED_AT_ROOT = frozenset(GIT_PATHS)
# What a hub serves beside a version's files, by name: the registry's ML-BOM (downloadable by
# path, never listed, so a snapshot holds only what the signature covers).
HUB_BOM_FILE = "mlgate.bom.cdx.json"

_SHARD_PREFIX = b"mlgate-shards-v1\0"


class _Hasher(Protocol):
    def update(self, data: bytes | memoryview, /) -> object: ...
    def digest(self) -> bytes: ...


@dataclass(frozen=True)
class FileDigest:
    """The digest of one file of a model.

    ``shard_size`` is None for a plain digest of the whole content, else the shard size of a
    sharded digest (see the module docstring for the definition).
    """

    path: str  # POSIX path relative to the model root (a single file: its own name)
    algorithm: str  # "sha256" (default), "blake2b", "blake3"
    digest: str  # lowercase hex
    size: int
    shard_size: int | None = None


@dataclass(frozen=True)
class Manifest:
    """Digests of every file of a model, sorted by the UTF-8 bytes of their paths.

    ``shard_size`` is the shard size the manifest was made with (None: no file sharded);
    hashing again with the same algorithm and shard size reproduces the same digests.
    """

    root: Path  # the model folder, or the single model file
    algorithm: str
    files: tuple[FileDigest, ...]
    shard_size: int | None = None

    def by_path(self) -> dict[str, FileDigest]:
        """The file digests keyed by relative path."""
        return {f.path: f for f in self.files}


@dataclass(frozen=True)
class _Task:
    """One unit of work: a whole file, or one shard (offset, length) of it."""

    rel: str
    path: Path
    offset: int
    length: int | None  # None: read to the end


def signature_name(folder: Path) -> str:
    """The name of a model folder's own signature: the registry's ``mlgate.sig`` in a pulled
    folder, else the OMS default ``model.sig``. Only one of them is the signature: beside
    ``mlgate.sig``, a vendor's ``model.sig`` is content, hashed and pinned like any file."""
    return PULL_SIGNATURE_FILE if (folder / PULL_SIGNATURE_FILE).is_file() else SIGNATURE_FILE


def new_hasher(algorithm: str) -> _Hasher:
    """A fresh hash object for ``algorithm`` (one of :data:`ALGORITHMS`)."""
    if algorithm == "sha256":
        return hashlib.sha256()
    if algorithm == "blake2b":
        return hashlib.blake2b()
    if algorithm == "blake3":
        try:
            from blake3 import blake3  # noqa: PLC0415  (optional speed-up, imported on demand)
        except ImportError as e:  # pragma: no cover - blake3 is a core dependency
            raise ProvenanceError("blake3 hashing needs the 'blake3' package") from e
        return blake3()
    raise ProvenanceError(
        f"unknown hash algorithm {algorithm!r}; use one of {', '.join(ALGORITHMS)}"
    )


def hash_model(
    path: Path,
    algorithm: str = "sha256",
    ignore: Sequence[str] = (),
    allow_symlinks: bool = False,
    workers: int | None = None,
    shard_size: int | None = None,
    defaults: bool = True,
) -> Manifest:
    """Hash every file of the model at ``path`` (a folder or a single file).

    ``ignore``: fnmatch patterns on the POSIX path relative to the root (a matching folder is
    skipped whole). With ``defaults``, ``.git/``, ``.gitattributes``, ``.github/``,
    ``.gitignore`` and the signature (:func:`signature_name`) at the root are ignored too;
    without, every file is hashed (what a gate needs to see all the content). Symbolic
    links raise :class:`SymlinkRefused` unless ``allow_symlinks``; a link that resolves
    outside the root is refused even then. ``workers``: threads (default: one per CPU).
    ``shard_size``: files larger than this are hashed in shards (see module doc).
    """
    new_hasher(algorithm)  # fail fast on an unknown algorithm
    if shard_size is not None and shard_size <= 0:
        raise ProvenanceError(f"shard size must be positive, got {shard_size}")
    root = Path(path)
    entries = list(_walk(root, tuple(ignore), allow_symlinks, defaults))
    tasks, plans = _plan(entries, shard_size)
    digests = _run(tasks, algorithm, workers)
    files = tuple(
        _combine(rel, algorithm, size, shard, [digests[t] for t in plan])
        for rel, size, shard, plan in plans
    )
    ordered = tuple(sorted(files, key=lambda f: _sort_key(f.path)))
    return Manifest(root=root, algorithm=algorithm, files=ordered, shard_size=shard_size)


def _sort_key(rel: str) -> bytes:
    return rel.encode("utf-8", "surrogateescape")


def _walk(
    root: Path, ignore: tuple[str, ...], allow_symlinks: bool, defaults: bool
) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, path) of every regular file to hash, after the ignore rules."""
    try:
        st = root.lstat()
    except OSError as e:
        raise ProvenanceError(f"cannot read model {root}: {e.strerror or e}") from e
    if stat.S_ISLNK(st.st_mode):
        # A single-file model given as a link: its target must be a regular file.
        if not allow_symlinks:
            raise SymlinkRefused(f"{root} is a symbolic link (use --allow-symlinks to follow it)")
        st = root.stat()
    if stat.S_ISREG(st.st_mode):
        yield root.name, root
        return
    if not stat.S_ISDIR(st.st_mode):
        raise ProvenanceError(f"{root} is neither a file nor a folder")
    real_root = root.resolve()
    at_root = _IGNORED_AT_ROOT | {signature_name(root)} if defaults else frozenset()
    yield from _walk_dir(root, "", real_root, _Rules(ignore, at_root), allow_symlinks, {real_root})


@dataclass(frozen=True)
class _Rules:
    """What the walk skips: user fnmatch patterns, and names skipped at the root only."""

    patterns: tuple[str, ...]
    at_root: frozenset[str]

    def ignored(self, rel: str, is_dir: bool) -> bool:
        if rel in self.at_root:
            return True
        return any(
            fnmatchcase(rel, p) or (is_dir and fnmatchcase(rel + "/", p)) for p in self.patterns
        )


def _walk_dir(
    folder: Path,
    prefix: str,
    real_root: Path,
    rules: _Rules,
    allow_symlinks: bool,
    seen: set[Path],
) -> Iterator[tuple[str, Path]]:
    try:
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda d: d.name)
    except OSError as e:
        raise ProvenanceError(f"cannot list {folder}: {e.strerror or e}") from e
    for child in children:
        rel = prefix + child.name
        child_path = Path(child.path)
        if rules.ignored(rel, child.is_dir(follow_symlinks=False)):
            continue
        if child.is_symlink():
            if not allow_symlinks:
                raise SymlinkRefused(
                    f"{rel} is a symbolic link; refused (use --allow-symlinks to follow links "
                    "that stay inside the model)"
                )
            target = child_path.resolve()
            if not target.is_relative_to(real_root):
                raise SymlinkRefused(
                    f"{rel} is a symbolic link escaping the model root -> {target}"
                )
            if target.is_dir():
                if target in seen:  # a link back up the tree would loop forever
                    raise SymlinkRefused(f"{rel} is a symbolic link loop -> {target}")
                yield from _walk_dir(child_path, rel + "/", real_root, rules, True, seen | {target})
            elif target.is_file():
                yield rel, child_path
            else:
                raise ProvenanceError(f"{rel} is a dangling or special symbolic link")
        elif child.is_dir(follow_symlinks=False):
            yield from _walk_dir(
                child_path, rel + "/", real_root, rules, allow_symlinks, seen | {child_path}
            )
        elif child.is_file(follow_symlinks=False):
            yield rel, child_path
        else:
            raise ProvenanceError(f"{rel} is not a regular file (socket, device or fifo)")


_Plan = tuple[str, int, int | None, list[_Task]]


def _plan(
    entries: list[tuple[str, Path]], shard_size: int | None
) -> tuple[list[_Task], list[_Plan]]:
    """Cut the files into tasks; each plan lists the tasks whose digests make one file digest."""
    tasks: list[_Task] = []
    plans: list[_Plan] = []
    for rel, path in entries:
        try:
            size = path.stat().st_size
        except OSError as e:
            raise ProvenanceError(f"cannot read {rel}: {e.strerror or e}") from e
        if shard_size is not None and size > shard_size:
            plan = [
                _Task(rel, path, off, min(shard_size, size - off))
                for off in range(0, size, shard_size)
            ]
            plans.append((rel, size, shard_size, plan))
        else:
            plan = [_Task(rel, path, 0, None)]
            plans.append((rel, size, None, plan))
        tasks.extend(plan)
    return tasks, plans


def _run(tasks: list[_Task], algorithm: str, workers: int | None) -> dict[_Task, tuple[bytes, int]]:
    """Hash every task, largest first so that no big one is left for the end on one core."""
    count = max(1, workers if workers is not None else (os.cpu_count() or 1))
    job: Callable[[_Task], tuple[bytes, int]] = partial(_hash_range, algorithm=algorithm)
    if count == 1 or len(tasks) <= 1:
        return {t: job(t) for t in tasks}
    order = sorted(tasks, key=lambda t: -(t.length if t.length is not None else _size(t.path)))
    pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="mlgate-hash")
    try:
        return dict(zip(order, pool.map(job, order), strict=True))
    finally:
        # On an error, drop the queued tasks instead of hashing gigabytes nobody will read.
        pool.shutdown(wait=True, cancel_futures=True)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


_local = threading.local()


def _buffer() -> bytearray:
    """One reused read buffer per thread: memory stays flat whatever the file sizes."""
    buf: bytearray | None = getattr(_local, "buffer", None)
    if buf is None:
        buf = _local.buffer = bytearray(CHUNK_SIZE)
    return buf


def _hash_range(task: _Task, algorithm: str) -> tuple[bytes, int]:
    """(raw digest, bytes read) of the task's byte range."""
    hasher = new_hasher(algorithm)
    buf = _buffer()
    view = memoryview(buf)
    remaining = task.length
    total = 0
    try:
        with task.path.open("rb", buffering=0) as f:
            if task.offset:
                f.seek(task.offset)
            while remaining is None or remaining > 0:
                want = CHUNK_SIZE if remaining is None else min(CHUNK_SIZE, remaining)
                n = f.readinto(view[:want])
                if not n:
                    break
                hasher.update(view[:n])
                total += n
                if remaining is not None:
                    remaining -= n
    except OSError as e:
        raise ProvenanceError(f"cannot read {task.rel}: {e.strerror or e}") from e
    if remaining:
        raise ProvenanceError(f"{task.rel} shrank while it was being hashed")
    return hasher.digest(), total


def _combine(
    rel: str, algorithm: str, size: int, shard: int | None, parts: list[tuple[bytes, int]]
) -> FileDigest:
    """The file digest from its task digests: the one digest, or the shard definition."""
    if shard is None:
        digest, read = parts[0]
        return FileDigest(rel, algorithm, digest.hex(), read)
    hasher = new_hasher(algorithm)
    hasher.update(_SHARD_PREFIX + shard.to_bytes(8, "big") + size.to_bytes(8, "big"))
    for digest, _ in parts:
        hasher.update(digest)
    return FileDigest(rel, algorithm, hasher.digest().hex(), size, shard)
