"""A local Hugging Face-compatible hub for tests (127.0.0.1, random port, in memory).

It speaks the part of the Hub protocol that ``huggingface_hub`` and mlgate use:

* ``GET /api/{models,datasets,spaces}/{repo}[/revision/{rev}]`` -> ``{"id", "sha", "siblings"}``
* ``GET /api/{type}s/{repo}/tree/{rev}[/{path}]`` -> ``[{"type": "file", "path", "size", "oid",
  "lfs"}]`` (one page)
* ``GET|HEAD /[datasets/|spaces/]{repo}/resolve/{rev}/{path}`` -> the bytes, with
  ``X-Repo-Commit``, ``ETag`` (git blob sha1, or the sha256 for LFS); LFS files answer
  ``302`` to ``{cdn}/cdn/{sha256}`` with ``X-Linked-Etag`` / ``X-Linked-Size``, like the Hub
* errors as the Hub sends them: 401/403 for private repos, 404 with ``X-Error-Code``
  (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound``)

Usage::

    with HubServer() as hub:
        sha = hub.add_repo("org/tiny", {"config.json": b"{}", "model.bin": (b"...", "lfs")})
        stage_huggingface(hub.url, "org/tiny", "main", staging=tmp_path / "s")

Misbehaviour for tests: :meth:`HubServer.patch_listing` (traversal names, duplicates, huge
listings), :meth:`HubServer.tamper` (serve other bytes than declared), :attr:`delay` and
:attr:`stall` (timeouts), :meth:`HubServer.fail` (any status), :meth:`HubServer.redirect`
(any Location). ``HubServer(cdn=other)`` serves the LFS blobs from a second origin,
``HubServer(prefix="/mirror")`` under a path; :attr:`requests` records every request.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

FileSpec = bytes | tuple[bytes, str]  # b"..." (regular git file) or (b"...", "lfs")
Listing = dict[str, Any]
_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_RESOLVE_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}


@dataclass(frozen=True)
class HubFile:
    data: bytes
    lfs: bool

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def blob_id(self) -> str:  # git's blob sha1, which the Hub reports as the ETag
        return hashlib.sha1(b"blob %d\0" % len(self.data) + self.data).hexdigest()


@dataclass
class HubRepo:
    repo_id: str
    repo_type: str
    token: str | None  # a private repo needs "Authorization: Bearer <token>"
    refs: dict[str, str] = field(default_factory=dict)  # branch or tag -> commit sha
    commits: dict[str, dict[str, HubFile]] = field(default_factory=dict)

    def resolve(self, revision: str) -> str | None:
        return revision if revision in self.commits else self.refs.get(revision)


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    authorization: str | None


class HubServer:
    """A threaded in-memory hub on 127.0.0.1; also a context manager."""

    def __init__(self, cdn: HubServer | None = None, prefix: str = "") -> None:
        self.prefix = prefix.rstrip("/")  # serve under http://127.0.0.1:port/prefix
        self.repos: dict[tuple[str, str], HubRepo] = {}
        self.blobs: dict[str, bytes] = {}  # sha256 -> bytes served at /cdn/<sha256>
        self.cdn = cdn
        self.requests: list[Seen] = []
        self.delay = 0.0  # seconds to wait before answering any request
        self.stall = 0.0  # seconds to hang after sending half of a file's body
        self._listing_patches: dict[str, Callable[[Listing], None]] = {}
        self._tampered: dict[tuple[str, str], bytes] = {}
        self._failures: list[tuple[str, int]] = []
        self._redirects: list[tuple[str, str]] = []
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._httpd.daemon_threads = True  # a stalled handler must not block stop()
        self._httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}{self.prefix}"
        # A short poll keeps stop() (and each test's teardown) fast.
        serve = partial(self._httpd.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()

    # -- set-up ---------------------------------------------------------------------------

    def add_repo(
        self,
        repo_id: str,
        files: Mapping[str, FileSpec],
        *,
        branch: str = "main",
        tags: tuple[str, ...] = (),
        repo_type: str = "model",
        token: str | None = None,
    ) -> str:
        """Commit ``files`` on ``branch`` (creating the repo); returns the new commit sha."""
        key = (repo_type, repo_id)
        repo = self.repos.setdefault(key, HubRepo(repo_id, repo_type, token))
        tree = {
            path: HubFile(spec[0], spec[1] == "lfs")
            if isinstance(spec, tuple)
            else HubFile(spec, False)
            for path, spec in files.items()
        }
        seed = json.dumps(
            [repo_id, branch, len(repo.commits), sorted((p, f.sha256) for p, f in tree.items())]
        )
        commit = hashlib.sha1(seed.encode()).hexdigest()
        repo.commits[commit] = tree
        for ref in (branch, *tags):
            repo.refs[ref] = commit
        cdn = self.cdn or self
        for f in tree.values():
            if f.lfs:
                cdn.blobs[f.sha256] = f.data
        return commit

    def patch_listing(self, repo_id: str, patch: Callable[[Listing], None]) -> None:
        """``patch(listing)`` edits the revision API's JSON for ``repo_id`` before it is sent."""
        self._listing_patches[repo_id] = patch

    def tamper(self, repo_id: str, path: str, data: bytes, repo_type: str = "model") -> None:
        """Serve ``data`` for ``path`` while the listing keeps the true size and sha256."""
        repo = self.repos[(repo_type, repo_id)]
        declared = next(tree[path] for tree in repo.commits.values() if path in tree)
        if declared.lfs:
            (self.cdn or self).blobs[declared.sha256] = data
        else:
            self._tampered[(repo_id, path)] = data

    def redirect(self, location: str, path_contains: str = "") -> None:
        """Answer ``302 Location: location`` to requests whose path contains ``path_contains``."""
        self._redirects.append((path_contains, location))

    def fail(self, status: int, path_contains: str = "") -> None:
        """Answer ``status`` to every request whose path contains ``path_contains``."""
        self._failures.append((path_contains, status))

    # -- life cycle -----------------------------------------------------------------------

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> HubServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- protocol -------------------------------------------------------------------------

    def listing(self, repo: HubRepo, commit: str) -> Listing:
        siblings = []
        for path, f in sorted(repo.commits[commit].items()):
            entry: dict[str, Any] = {"rfilename": path, "size": len(f.data), "blobId": f.blob_id}
            if f.lfs:
                entry["lfs"] = {"sha256": f.sha256, "size": len(f.data), "pointerSize": 134}
            siblings.append(entry)
        listing: Listing = {
            "_id": commit[:24],
            "id": repo.repo_id,
            "modelId": repo.repo_id,
            "sha": commit,
            "private": repo.token is not None,
            "lastModified": "2026-01-01T00:00:00.000Z",
            "tags": [],
            "siblings": siblings,
        }
        patch = self._listing_patches.get(repo.repo_id)
        if patch is not None:
            patch(listing)
        return listing

    def tree(self, repo: HubRepo, commit: str, under: str) -> list[dict[str, Any]]:
        entries = []
        for path, f in sorted(repo.commits[commit].items()):
            if under and not path.startswith(under.rstrip("/") + "/"):
                continue
            entry: dict[str, Any] = {
                "type": "file",
                "oid": f.blob_id,
                "size": len(f.data),
                "path": path,
            }
            if f.lfs:
                entry["lfs"] = {"oid": f.sha256, "size": len(f.data), "pointerSize": 134}
            entries.append(entry)
        return entries

    def served_bytes(self, repo: HubRepo, path: str, f: HubFile) -> bytes:
        return self._tampered.get((repo.repo_id, path), f.data)

    def failure_for(self, path: str) -> int | None:
        return next((status for part, status in self._failures if part in path), None)

    def redirect_for(self, path: str) -> str | None:
        return next((location for part, location in self._redirects if part in path), None)


def _handler_for(hub: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(_Handler):
        server_hub = hub

    return Handler


class _Handler(BaseHTTPRequestHandler):
    server_hub: HubServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet test output
        pass

    def do_GET(self) -> None:
        self._serve(body=True)

    def do_HEAD(self) -> None:
        self._serve(body=False)

    # -- dispatch -------------------------------------------------------------------------

    def _serve(self, body: bool) -> None:
        hub = self.server_hub
        hub.requests.append(Seen(self.command, self.path, self.headers.get("Authorization")))
        if hub.delay:
            time.sleep(hub.delay)
        split = urlsplit(self.path)
        path = split.path
        if hub.prefix:
            if not path.startswith(hub.prefix + "/"):
                return self._error(404, "EntryNotFound", "outside the prefix", body)
            path = path[len(hub.prefix) :]
        status = hub.failure_for(path)
        location = hub.redirect_for(path)
        if location is not None:
            self._redirect(location)
        elif status is not None:
            self._error(status, "Fault", f"injected HTTP {status}", body)
        elif path.startswith("/cdn/"):
            self._cdn(path[len("/cdn/") :], parse_qs(split.query), body)
        elif path.startswith("/api/"):
            self._api(path[len("/api/") :], body)
        else:
            self._resolve(path.lstrip("/"), body)

    def _api(self, rest: str, body: bool) -> None:
        kind, _, rest = rest.partition("/")
        repo_type = _TYPES.get(kind)
        if repo_type is None:
            return self._error(404, "EntryNotFound", "unknown API", body)
        for word in ("/revision/", "/tree/"):
            if word in rest:
                repo_id, _, tail = rest.partition(word)
                break
        else:
            repo_id, word, tail = rest, "/revision/", "main"
        revision, _, under = tail.partition("/")
        repo, commit = self._find(repo_type, repo_id, unquote(revision), body)
        if repo is None or commit is None:
            return None
        if word == "/tree/":
            return self._json(self.server_hub.tree(repo, commit, unquote(under)), body)
        return self._json(self.server_hub.listing(repo, commit), body)

    def _resolve(self, rest: str, body: bool) -> None:
        repo_type = "model"
        for kind, prefix in _RESOLVE_PREFIX.items():
            if prefix and rest.startswith(prefix):
                repo_type, rest = kind, rest[len(prefix) :]
        repo_id, sep, tail = rest.partition("/resolve/")
        revision, _, quoted = tail.partition("/")
        if not sep or not quoted:
            return self._error(404, "EntryNotFound", "not a resolve URL", body)
        repo, commit = self._find(repo_type, repo_id, unquote(revision), body)
        if repo is None or commit is None:
            return None
        path = unquote(quoted)
        f = repo.commits[commit].get(path)
        if f is None:
            return self._error(404, "EntryNotFound", f"{path} does not exist at {commit}", body)
        hub = self.server_hub
        if f.lfs:
            cdn = hub.cdn or hub
            headers = {
                "X-Repo-Commit": commit,
                "X-Linked-Etag": f'"{f.sha256}"',
                "X-Linked-Size": str(len(f.data)),
                "ETag": f'"{f.blob_id}"',
            }
            return self._redirect(f"{cdn.url}/cdn/{f.sha256}?commit={commit}", headers)
        return self._bytes(hub.served_bytes(repo, path, f), f'"{f.blob_id}"', commit, body)

    def _cdn(self, sha256: str, query: dict[str, list[str]], body: bool) -> None:
        data = self.server_hub.blobs.get(sha256)
        if data is None:
            return self._error(404, "EntryNotFound", "no such blob", body)
        commit = query.get("commit", [""])[0]  # the Hub's CDN URLs carry signed parameters too
        return self._bytes(data, f'"{sha256}"', commit, body)

    def _find(
        self, repo_type: str, repo_id: str, revision: str, body: bool
    ) -> tuple[HubRepo | None, str | None]:
        repo = self.server_hub.repos.get((repo_type, repo_id))
        if repo is None:
            self._error(404, "RepoNotFound", f"Repository {repo_id} not found", body)
            return None, None
        if repo.token is not None:
            auth = self.headers.get("Authorization")
            if auth is None:
                self._error(401, "RepoNotFound", "Invalid username or password.", body)
                return None, None
            if auth != f"Bearer {repo.token}":
                self._error(403, "GatedRepo", "Access denied", body)
                return None, None
        commit = repo.resolve(revision)
        if commit is None:
            self._error(404, "RevisionNotFound", f"Invalid rev id: {revision}", body)
        return repo, commit

    # -- answers --------------------------------------------------------------------------

    def _json(self, payload: object, body: bool) -> None:
        data = json.dumps(payload).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self._write(data)

    def _bytes(self, data: bytes, etag: str, commit: str, body: bool) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("ETag", etag)
        if commit:
            self.send_header("X-Repo-Commit", commit)
        self.end_headers()
        if not body:
            return
        stall = self.server_hub.stall
        if stall:
            self._write(data[: len(data) // 2])
            time.sleep(stall)
            data = data[len(data) // 2 :]
        self._write(data)

    def _write(self, data: bytes) -> None:
        with contextlib.suppress(OSError):  # the client gave up (timeout tests)
            self.wfile.write(data)
            self.wfile.flush()

    def _redirect(self, location: str, headers: Mapping[str, str] | None = None) -> None:
        self.send_response(302)
        self.send_header("Location", location)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _error(self, status: int, code: str, message: str, body: bool) -> None:
        data = json.dumps({"error": message}).encode()
        self.send_response(status)
        self.send_header("X-Error-Code", code)
        self.send_header("X-Error-Message", message)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body:
            self._write(data)
