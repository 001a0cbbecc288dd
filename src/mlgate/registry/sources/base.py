"""What every source hands to the registry, and the file-name rules every source enforces.

A source turns "something outside" (a folder, a hub repo) into a :class:`StagedSource`: a
sorted list of validated relative paths with the bytes already on local disk. Names are checked
once here (parse, then trust), so the registry never sees ``..``, absolute paths, Windows
separators, control characters or two names that one filesystem would store as the same file.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from mlgate.errors import MlgateError


class SourceError(MlgateError):
    """A model source cannot be staged (bad names, limits, unreachable hub); nothing was kept."""


@dataclass(frozen=True)
class SourceLimits:
    """Bounds on what one ingest may bring in (defence against resource exhaustion)."""

    max_files: int = 10_000
    max_total_bytes: int = 2 * 1024**4  # 2 TiB
    max_file_bytes: int = 1024**4
    max_path_length: int = 1024
    timeout: float = 60.0  # seconds per network operation


DEFAULT_LIMITS = SourceLimits()  # frozen, so one shared default is safe


@dataclass(frozen=True)
class StagedFile:
    """One file of a staged model."""

    path: str  # POSIX path relative to the model root, validated by :func:`check_rel_path`
    local: Path  # where the bytes are now (original file for local sources, a copy for hubs)
    size: int
    expected_sha256: str | None = None  # hub-declared LFS sha256, already checked if given


@dataclass(frozen=True)
class StagedSource:
    """Everything a source staged, ready for the registry to copy and hash."""

    kind: str  # "local" | "huggingface"
    uri: str  # absolute local path, or f"{endpoint}/{repo_id}"
    repo_id: str | None
    revision: str | None  # resolved immutable commit sha for hubs; None for local
    requested_revision: str | None
    files: tuple[StagedFile, ...]  # sorted by path
    single_file: bool  # True when the source was one file, not a folder


# A Windows drive ("C:") as first segment: harmless on POSIX, an absolute path on Windows.
_DRIVE = re.compile(r"[A-Za-z]:")


def check_rel_path(name: object, limits: SourceLimits) -> str:
    """``name`` if it is a safe relative POSIX path, else :class:`SourceError` naming it.

    Refused: non-strings, empty names, names longer than ``limits.max_path_length`` UTF-8
    bytes, undecodable bytes, control characters (NUL, newline...), backslashes, absolute
    paths and drive letters, empty/``.``/``..`` segments (path traversal, CWE-22) and any
    ``.git`` component (writing into ``.git/`` of a checkout can run hooks).
    """
    if not isinstance(name, str) or not name:
        raise SourceError(f"invalid file name {name!r}: expected a non-empty string")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError as e:
        raise SourceError(f"file name {name!r} is not valid UTF-8") from e
    if len(encoded) > limits.max_path_length:
        raise SourceError(
            f"file name {name[:80]!r}... is {len(encoded)} bytes long "
            f"(limit {limits.max_path_length})"
        )
    reason = _name_problem(name)
    if reason:
        raise SourceError(f"unsafe file name {name!r}: {reason}")
    return name


def _name_problem(name: str) -> str | None:
    if any(unicodedata.category(c) == "Cc" for c in name):
        return "control character"
    if "\\" in name:
        return "backslash (a Windows path separator)"
    if name.startswith("/") or _DRIVE.match(name):
        return "absolute path"
    for segment in name.split("/"):
        if segment in ("", ".", ".."):
            return "path traversal or empty path segment"
        # Git refuses these too (CVE-2014-9390): ".GIT" and ".git." are ".git" on
        # case-insensitive or Windows filesystems, "git~1" is its 8.3 short name on NTFS.
        if segment.casefold().rstrip(". ") in (".git", "git~1"):
            return "'.git' path component"
    return None


def collision_key(path: str) -> str:
    """The name a case-insensitive, normalising filesystem (macOS, Windows) would store."""
    return unicodedata.normalize("NFC", unicodedata.normalize("NFC", path).casefold())


class NameSet:
    """Detects paths that would land on the same file, or a file where a folder must be."""

    def __init__(self) -> None:
        self._files: dict[str, str] = {}
        self._dirs: dict[str, str] = {}

    def add(self, path: str) -> None:
        """Record ``path``; :class:`SourceError` if it collides with an earlier one."""
        key = collision_key(path)
        other = self._files.get(key) or self._dirs.get(key)
        if other is not None:
            raise SourceError(
                f"duplicate file name {path!r}: collides with {other!r} "
                "(same name after Unicode normalisation and case folding)"
            )
        self._files[key] = path
        parts = path.split("/")
        for depth in range(1, len(parts)):
            folder = "/".join(parts[:depth])
            folder_key = collision_key(folder)
            clash = self._files.get(folder_key)
            if clash is not None:
                raise SourceError(f"file name {path!r} needs {clash!r} to be a folder")
            self._dirs.setdefault(folder_key, folder)


class Budget:
    """Running totals checked against :class:`SourceLimits` as files are discovered."""

    def __init__(self, limits: SourceLimits) -> None:
        self.limits = limits
        self.files = 0
        self.total = 0

    def add(self, path: str, size: int) -> None:
        """Count one file of ``size`` bytes; :class:`SourceError` as soon as a limit is passed."""
        limits = self.limits
        self.files += 1
        if self.files > limits.max_files:
            raise SourceError(f"too many files: more than {limits.max_files} (refused at {path!r})")
        if size > limits.max_file_bytes:
            raise SourceError(
                f"{path} is {size} bytes, over the per-file limit of {limits.max_file_bytes}"
            )
        self.total += size
        if self.total > limits.max_total_bytes:
            raise SourceError(
                f"total size over the limit of {limits.max_total_bytes} bytes (at {path!r})"
            )
