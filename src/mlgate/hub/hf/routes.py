"""The Hugging Face-compatible routes, as ``huggingface_hub`` 2.x calls them:

* ``HEAD``/``GET /{repo_id}/resolve/{revision}/{path}``: a file (``hf_hub_download``,
  ``from_pretrained``); served directly, never redirected;
* ``GET /api/models/{repo_id}`` and ``/api/models/{repo_id}/revision/{revision}``:
  ``ModelInfo`` (``model_info``, ``repo_info``; ``snapshot_download`` resolves with it);
* ``GET /api/models/{repo_id}/tree/{revision}[/{path}]``: the listing (``list_repo_files``,
  ``list_repo_tree``, ``snapshot_download``), ``recursive`` and ``expand`` honoured, paged
  with a ``cursor`` and a ``Link: <...>; rel="next"`` header pinned to the resolved commit
  (pages of one listing never mix two versions when ``main`` moves meanwhile).

Every route reads as the request's identity (:func:`mlgate.hub.auth.reading_registry`):
a bearer token, which clients send from ``HF_TOKEN``, or anonymous where policy allows.
A repo the registry lacks is pulled through from the upstream when one is configured
(:mod:`.pulled`). Routes are matched on the decoded path and then parsed from the raw one
(:mod:`.paths`).
The generic ``/api/models/{repo_id}`` route is registered last, so that routes added before
it (the management API) keep their paths.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse

from mlgate.hub.auth import reading_registry
from mlgate.hub.hf import listing, paths
from mlgate.hub.hf.entries import Entry, entries, listed
from mlgate.hub.hf.errors import (
    COMMIT_HEADER,
    ENTRY_NOT_FOUND,
    REPO_NOT_FOUND,
    HfError,
    bad_request,
    hf_error_response,
)
from mlgate.hub.hf.pulled import resolve_or_pull
from mlgate.hub.hf.recorder import DownloadRecorder
from mlgate.hub.hf.responses import file_response, record_download
from mlgate.hub.hf.revisions import MAIN, Resolved
from mlgate.registry.errors import PermissionDenied
from mlgate.registry.service import Registry

# The Hub's page size for plain tree listings (it uses 50 with expand=true).
TREE_PAGE_SIZE = 1000
API = "/api/models/"

router = APIRouter(include_in_schema=False)


def install(app: FastAPI) -> None:
    """Serve the Hugging Face-compatible routes on ``app``."""
    app.state.hf_tree_page_size = TREE_PAGE_SIZE
    app.state.download_recorder = DownloadRecorder(app.state.registry.downloads)
    app.add_exception_handler(HfError, hf_error_response)
    app.include_router(router)


def hf_reader(request: Request) -> Registry:
    """The registry acting as the request's identity; a refusal in the client's terms."""
    try:
        return reading_registry(request)
    except HTTPException as e:
        raise HfError(e.status_code, str(e.detail)) from None


Reader = Annotated[Registry, Depends(hf_reader)]


@contextmanager
def refusals() -> Iterator[None]:
    """A role the identity lacks is a 403 the client shows."""
    try:
        yield
    except PermissionDenied as e:
        raise HfError(403, str(e)) from None


@router.api_route("/{repo:path}/resolve/{rest:path}", methods=["GET", "HEAD"])
def resolve_file(request: Request, registry: Reader) -> Response:
    """A file of a served version (HEAD: its headers only)."""
    repo, after = paths.split_repo(paths.raw_segments(request, "/"), "resolve")
    if len(after) < 2:
        raise bad_request("expected /{repo_id}/resolve/{revision}/{path}")
    revision, path = paths.revision(after[0]), paths.file_path(after[1:])
    with refusals():
        resolved = resolve_or_pull(request, registry, repo, revision)
        entry = _entry(registry, resolved, path)
        response = file_response(entry, resolved.commit)
        record_download(registry, request, resolved, entry)
    return response


@router.get("/api/models/{repo:path}/tree/{rest:path}")
def repo_tree(
    request: Request,
    registry: Reader,
    recursive: bool = False,
    expand: bool = False,
    cursor: int = 0,
) -> Response:
    """One page of a version's tree."""
    repo, after = paths.split_repo(paths.raw_segments(request, API), "tree")
    if not after or not after[0]:
        raise bad_request("expected /api/models/{repo_id}/tree/{revision}[/{path}]")
    revision = paths.revision(after[0])
    under = paths.file_path(after[1:]) if [s for s in after[1:] if s] else ""
    with refusals():
        resolved = resolve_or_pull(request, registry, repo, revision)
        items = listing.tree(
            resolved, listed(entries(registry, resolved.version)), under, recursive, expand
        )
    if under and not items:
        raise HfError(404, f"no folder {under!r} in {repo}", ENTRY_NOT_FOUND, resolved.commit)
    size: int = request.app.state.hf_tree_page_size
    if not 0 <= cursor <= len(items):
        raise bad_request(f"invalid cursor {cursor}")
    page = items[cursor : cursor + size]
    response = _json(page, resolved.commit)
    if cursor + size < len(items):
        link = _next_page(request, resolved, under, recursive, expand, cursor + size)
        response.headers["Link"] = f'<{link}>; rel="next"'
    return response


@router.get("/api/models/{repo:path}/revision/{rest:path}")
def model_info_at(request: Request, registry: Reader, blobs: bool = False) -> Response:
    """``ModelInfo`` of the version a revision names."""
    repo, after = paths.split_repo(paths.raw_segments(request, API), "revision")
    if len(after) != 1:
        raise bad_request("expected /api/models/{repo_id}/revision/{revision}")
    return _model_info(request, registry, repo, paths.revision(after[0]), blobs)


@router.get("/api/models/{repo:path}")
def model_info(request: Request, registry: Reader, blobs: bool = False) -> Response:
    """``ModelInfo`` of the newest served version (``main``)."""
    segments = paths.raw_segments(request, API)
    if len(segments) > 2:
        raise HfError(404, "expected /api/models/{repo_id}", REPO_NOT_FOUND)
    return _model_info(request, registry, paths.repo_id(segments), MAIN, blobs)


def _model_info(
    request: Request, registry: Registry, repo: str, revision: str, blobs: bool
) -> Response:
    with refusals():
        resolved = resolve_or_pull(request, registry, repo, revision)
        found = listed(entries(registry, resolved.version))
    return _json(listing.model_info(resolved, found, blobs), resolved.commit)


def _entry(registry: Registry, resolved: Resolved, path: str) -> Entry:
    entry = entries(registry, resolved.version).get(path)
    if entry is None:
        raise HfError(
            404, f"{resolved.version.ref} has no file {path!r}", ENTRY_NOT_FOUND, resolved.commit
        )
    return entry


def _json(content: Any, commit: str) -> JSONResponse:
    return JSONResponse(content, headers={COMMIT_HEADER: commit})


def _next_page(
    request: Request, resolved: Resolved, under: str, recursive: bool, expand: bool, cursor: int
) -> str:
    path = f"{API}{quote(resolved.version.model)}/tree/{resolved.commit}"
    if under:
        path += "/" + quote(under, safe="")
    query = {"recursive": str(recursive).lower(), "expand": str(expand).lower(), "cursor": cursor}
    return str(request.url.replace(path=path, query=urlencode(query)))
