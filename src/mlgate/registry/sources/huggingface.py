"""Stage a model from a Hugging Face-compatible hub, pinned to one immutable commit.

Protocol (the one the Hub and ``huggingface_hub`` use):

1. ``GET {endpoint}/api/{type}s/{repo}/revision/{rev}?blobs=true`` resolves the branch or tag
   to a commit sha and lists every file with its size (and LFS sha256).
2. ``GET {endpoint}/{datasets/|spaces/}{repo}/resolve/{sha}/{path}`` for each file, by the
   commit sha (never by branch name: a push between listing and download would otherwise mix
   two versions). LFS files redirect to a CDN; see :mod:`._http` for the redirect rules.

The whole listing is validated before one byte is downloaded (names, duplicates, counts,
sizes); each download is checked against the declared size and LFS sha256 while streaming.
On any failure every file and folder written under ``staging`` is removed.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote, urlsplit

from mlgate.registry.sources._http import HttpStatusError, network_error, open_url, read_limited
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

CHUNK_SIZE = 128 * 1024
# URL path segment before the repo id on resolve URLs, per repo type (as huggingface_hub).
_RESOLVE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_COMMIT = re.compile(r"[0-9a-f]{40}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REPO_ID = re.compile(rf"(?:{_REPO_PART}/)?{_REPO_PART}")
# The listing of a repo with max_files files of max_path_length names, with room for metadata.
_LISTING_BYTES_PER_FILE = 512


@dataclass(frozen=True)
class _Entry:
    path: str
    size: int
    sha256: str | None


def stage_huggingface(
    endpoint: str,
    repo_id: str,
    revision: str = "main",
    *,
    staging: Path,
    token: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
    repo_type: str = "model",
) -> StagedSource:
    """Download ``repo_id`` at ``revision`` from ``endpoint`` into ``staging``, verified."""
    base = _check_endpoint(endpoint)
    _check_request(repo_id, revision, repo_type)
    commit, entries = _list(base, repo_id, revision, repo_type, token, limits)
    repo_url = f"{base}/{_RESOLVE_PREFIX[repo_type]}{repo_id}"
    writer = _Staging(Path(staging))
    try:
        files = tuple(
            _download(writer, f"{repo_url}/resolve/{commit}/{quote(e.path)}", e, token, limits)
            for e in entries
        )
    except BaseException:
        writer.discard()
        raise
    return StagedSource(
        "huggingface", repo_url, repo_id, commit, revision, files, single_file=False
    )


def resolve_revision(
    endpoint: str,
    repo_id: str,
    revision: str = "main",
    *,
    token: str | None = None,
    limits: SourceLimits = DEFAULT_LIMITS,
    repo_type: str = "model",
) -> str:
    """The commit sha ``revision`` of ``repo_id`` resolves to on ``endpoint``, from the same
    validated listing a download starts with (step 1 above); nothing is downloaded."""
    base = _check_endpoint(endpoint)
    _check_request(repo_id, revision, repo_type)
    commit, _ = _list(base, repo_id, revision, repo_type, token, limits)
    return commit


def _check_endpoint(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SourceError(f"hub endpoint {endpoint!r} must be an http:// or https:// URL")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise SourceError(
            f"hub endpoint {endpoint!r} must not carry credentials, a query or a fragment "
            "(pass the token separately)"
        )
    return endpoint.rstrip("/")


def _check_request(repo_id: str, revision: str, repo_type: str) -> None:
    if repo_type not in _RESOLVE_PREFIX:
        raise SourceError(f"unknown repo type {repo_type!r}; use model, dataset or space")
    if not _REPO_ID.fullmatch(repo_id) or ".." in repo_id or "--" in repo_id:
        raise SourceError(f"invalid repo id {repo_id!r}: expected 'name' or 'org/name'")
    if not revision or len(revision) > 256 or not revision.isprintable():
        raise SourceError(f"invalid revision {revision!r}")


def _list(
    base: str,
    repo_id: str,
    revision: str,
    repo_type: str,
    token: str | None,
    limits: SourceLimits,
) -> tuple[str, list[_Entry]]:
    """(commit sha, validated files) of the revision, before anything is downloaded."""
    url = f"{base}/api/{repo_type}s/{repo_id}/revision/{quote(revision, safe='')}?blobs=true"
    subject = f"repo {repo_id}"
    try:
        with open_url(url, token=token, timeout=limits.timeout, subject=subject) as response:
            cap = 1024**2 + limits.max_files * (limits.max_path_length + _LISTING_BYTES_PER_FILE)
            body = read_limited(response, cap, url, limits.timeout, subject)
    except HttpStatusError as e:
        if e.error_code == "RevisionNotFound":
            raise SourceError(
                f"revision {revision!r} not found in repo {repo_id} at {url} (HTTP {e.status})"
            ) from e
        raise
    try:
        listing = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise SourceError(f"the hub's listing of {repo_id} at {url} is not JSON") from e
    return _parse_listing(listing, repo_id, revision, limits)


def _parse_listing(
    listing: object, repo_id: str, revision: str, limits: SourceLimits
) -> tuple[str, list[_Entry]]:
    if not isinstance(listing, dict):
        raise SourceError(f"the hub's listing of {repo_id} is not a JSON object")
    commit = listing.get("sha")
    if not isinstance(commit, str) or not _COMMIT.fullmatch(commit):
        raise SourceError(f"the hub gave no valid commit sha for {repo_id}@{revision}: {commit!r}")
    if _COMMIT.fullmatch(revision) and commit != revision:
        raise SourceError(f"the hub resolved commit {revision} of {repo_id} to {commit}")
    siblings = listing.get("siblings")
    if not isinstance(siblings, list):
        raise SourceError(f"the hub's listing of {repo_id}@{commit} has no file list")
    if len(siblings) > limits.max_files:
        raise SourceError(
            f"too many files: {repo_id}@{commit} lists {len(siblings)} "
            f"(limit {limits.max_files}); nothing downloaded"
        )
    budget, names = Budget(limits), NameSet()
    entries = []
    for sibling in siblings:
        entry = _parse_sibling(sibling, limits)
        budget.add(entry.path, entry.size)
        names.add(entry.path)
        entries.append(entry)
    return commit, sorted(entries, key=lambda e: e.path)


def _parse_sibling(sibling: object, limits: SourceLimits) -> _Entry:
    if not isinstance(sibling, dict):
        raise SourceError(f"invalid file entry in the hub's listing: {sibling!r:.200}")
    path = check_rel_path(sibling.get("rfilename"), limits)
    size = sibling.get("size")
    lfs = sibling.get("lfs")
    if lfs is None:
        return _Entry(path, _check_size(path, size), None)
    if not isinstance(lfs, dict):
        raise SourceError(f"invalid LFS entry for {path}: {lfs!r:.200}")
    sha256 = lfs.get("sha256")
    if not isinstance(sha256, str) or not _SHA256.fullmatch(sha256):
        raise SourceError(f"invalid LFS sha256 for {path}: {sha256!r:.100}")
    lfs_size = _check_size(path, lfs.get("size"))
    if size is not None and size != lfs_size:
        raise SourceError(f"the hub declares two sizes for {path}: {size!r} and {lfs_size}")
    return _Entry(path, lfs_size, sha256)


def _check_size(path: str, size: object) -> int:
    # bool is an int in Python: {"size": true} must not pass as one byte.
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise SourceError(f"invalid or missing size for {path} in the hub's listing: {size!r}")
    return size


class _Staging:
    """Files and folders created under the staging folder, so that a failure removes them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.created: list[Path] = []
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SourceError(f"cannot create staging folder {root}: {e.strerror or e}") from e

    def open(self, rel: str) -> tuple[Path, BinaryIO]:
        """A new file for ``rel``; refuses existing files and links in the way (no escape)."""
        parts = rel.split("/")
        folder = self.root
        try:
            for part in parts[:-1]:
                folder = folder / part
                self._mkdir(folder, rel)
            target = folder / parts[-1]
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
            fd = os.open(target, flags, 0o644)
        except OSError as e:
            raise SourceError(f"cannot stage {rel} in {self.root}: {e.strerror or e}") from e
        self.created.append(target)
        return target, os.fdopen(fd, "wb")

    def _mkdir(self, folder: Path, rel: str) -> None:
        try:
            folder.mkdir()
        except FileExistsError:
            # lstat: an existing link to elsewhere must not be written through.
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise SourceError(
                    f"cannot stage {rel}: {folder} exists and is not a folder"
                ) from None
            return
        self.created.append(folder)

    def discard(self) -> None:
        """Remove everything this staging created, deepest first."""
        for path in reversed(self.created):
            try:
                if path.is_dir() and not path.is_symlink():
                    path.rmdir()
                else:
                    path.unlink()
            except OSError:
                pass  # best effort: the original error is the one to report
        self.created.clear()


def _download(
    writer: _Staging, url: str, entry: _Entry, token: str | None, limits: SourceLimits
) -> StagedFile:
    target, out = writer.open(entry.path)
    with out, open_url(url, token=token, timeout=limits.timeout, subject=entry.path) as response:
        digest = _copy(response, out, entry, url, limits.timeout)
    if entry.sha256 is not None and digest != entry.sha256:
        raise SourceError(
            f"sha256 mismatch for {entry.path}: the hub declared {entry.sha256}, "
            f"the download is {digest}"
        )
    return StagedFile(entry.path, target, entry.size, entry.sha256)


def _copy(
    response: http.client.HTTPResponse, out: BinaryIO, entry: _Entry, url: str, timeout: float
) -> str:
    """Stream the body to ``out`` through one bounded buffer; the sha256 of what was read."""
    hasher = hashlib.sha256()
    buf = bytearray(CHUNK_SIZE)
    view = memoryview(buf)
    total = 0
    while n := _read(response, buf, f"downloading {entry.path}", url, timeout):
        total += n
        if total > entry.size:  # stop at once: a hostile server could send forever
            break
        hasher.update(view[:n])
        try:
            out.write(view[:n])
        except OSError as e:
            raise SourceError(f"cannot write {entry.path} to staging: {e.strerror or e}") from e
    if total != entry.size:
        raise SourceError(
            f"size mismatch for {entry.path}: the hub declared {entry.size} bytes, "
            f"it sent {'more' if total > entry.size else total}"
        )
    return hasher.hexdigest()


def _read(
    response: http.client.HTTPResponse, buf: bytearray, subject: str, url: str, timeout: float
) -> int:
    try:
        return response.readinto(buf)
    except http.client.IncompleteRead:  # body shorter than its Content-Length: the size
        return 0  # check that follows names the file
    except (OSError, http.client.HTTPException) as e:
        raise network_error(e, url, timeout, subject) from e
