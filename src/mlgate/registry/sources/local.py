"""Stage a model from a local file or folder, without copying it.

The walk is lazy (``os.scandir`` one entry at a time) and every limit is checked as entries are
met, so a folder of a million files is refused after ``max_files + 1`` of them, not after
listing them all. Links are followed only when they resolve inside the model folder (a link to
``/etc/shadow`` or ``~/.ssh`` would otherwise be ingested as model content); hard links (which
cannot be told apart from the file they name) and special files are refused.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mlgate.registry.sources.base import (
    DEFAULT_LIMITS,
    Budget,
    NameSet,
    SourceError,
    SourceLimits,
    StagedFile,
    StagedSource,
    check_rel_path,
)

# Not model content: VCS metadata at any depth, and huggingface_hub's local-dir bookkeeping.
_IGNORED_NAMES = frozenset({".git"})
_IGNORED_DIRS = (".cache/huggingface",)


@dataclass(frozen=True)
class _Folder:
    path: Path  # where to list (may be reached through an inside link)
    prefix: str  # "" at the root, else "rel/path/"
    chain: frozenset[Path]  # real paths of the folders above: a link back into one is a loop


def stage_local(path: Path, limits: SourceLimits = DEFAULT_LIMITS) -> StagedSource:
    """The files of the model at ``path`` (one file or a folder), validated, not copied."""
    given = Path(path)
    uri = os.path.abspath(given)
    try:
        st = given.stat()  # the user's own argument may be a link: follow it
    except OSError as e:
        raise SourceError(f"cannot read model {given}: {e.strerror or e}") from e
    real = given.resolve()
    if stat.S_ISREG(st.st_mode):
        name = check_rel_path(given.name, limits)
        _single_link(name, st)
        Budget(limits).add(name, st.st_size)
        files: tuple[StagedFile, ...] = (_readable(name, real, st.st_size),)
        return StagedSource("local", uri, None, None, None, files, single_file=True)
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(f"{given} is neither a file nor a folder")
    found = _walk(real, limits)
    ordered = tuple(sorted(found, key=lambda f: f.path))
    return StagedSource("local", uri, None, None, None, ordered, single_file=False)


def _walk(real_root: Path, limits: SourceLimits) -> list[StagedFile]:
    budget, names, folders = Budget(limits), NameSet(), 0
    found: list[StagedFile] = []
    stack = [_Folder(real_root, "", frozenset({real_root}))]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder.path) as entries:
                for entry in entries:
                    rel = folder.prefix + entry.name
                    if _ignored(entry.name, rel):
                        continue
                    check_rel_path(rel, limits)
                    sub = _visit(entry, rel, real_root, folder.chain)
                    if isinstance(sub, _Folder):
                        folders += 1
                        if folders > limits.max_files:
                            raise SourceError(f"too many folders (refused at {rel!r})")
                        stack.append(sub)
                        continue
                    local, size = sub
                    budget.add(rel, size)
                    names.add(rel)
                    found.append(_readable(rel, local, size))
        except OSError as e:
            raise SourceError(f"cannot list {folder.path}: {e.strerror or e}") from e
    return found


def _ignored(name: str, rel: str) -> bool:
    return name in _IGNORED_NAMES or any(rel == d or rel.endswith("/" + d) for d in _IGNORED_DIRS)


def _visit(
    entry: os.DirEntry[str], rel: str, real_root: Path, chain: frozenset[Path]
) -> _Folder | tuple[Path, int]:
    """A folder to walk, or (real file path, size); refuses links out, loops, special files."""
    st = entry.stat(follow_symlinks=False)
    local = Path(entry.path)
    if stat.S_ISLNK(st.st_mode):
        local = local.resolve()
        if not local.is_relative_to(real_root):
            raise SourceError(f"{rel} is a symbolic link escaping the model folder -> {local}")
        try:
            st = local.stat()
        except OSError as e:
            raise SourceError(f"{rel} is a dangling symbolic link -> {local}") from e
        if stat.S_ISDIR(st.st_mode) and local in chain:
            raise SourceError(f"{rel} is a symbolic link loop -> {local}")
    if stat.S_ISDIR(st.st_mode):
        real = local.resolve()
        return _Folder(local, rel + "/", chain | {real})
    if not stat.S_ISREG(st.st_mode):
        raise SourceError(f"{rel} is not a regular file (fifo, socket or device); refused")
    _single_link(rel, st)
    return local, st.st_size


def _single_link(rel: str, st: os.stat_result) -> None:
    """A hard link is another name for any file of the file system (``ln /etc/passwd``): its
    content would be stored as model content, so a file with more than one name is refused."""
    if st.st_nlink > 1:
        raise SourceError(
            f"{rel} is a hard link ({st.st_nlink} names share its content, possibly outside "
            "the model); refused: copy the file instead"
        )


def _readable(rel: str, local: Path, size: int) -> StagedFile:
    """Fail now, naming the file, rather than half-way through the registry's copy."""
    try:
        fd = os.open(local, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as e:
        raise SourceError(f"cannot read {rel}: {e.strerror or e}") from e
    os.close(fd)
    return StagedFile(rel, local, size)
