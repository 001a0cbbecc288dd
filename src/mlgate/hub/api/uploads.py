"""Upload routes: ingest a model from the caller's machine (:mod:`mlgate.hub.uploads`).

``POST /uploads`` opens a session, ``PUT /uploads/{id}/files/{path}`` streams one file into
it (``X-Content-SHA256`` checked when sent), ``POST /uploads/{id}/commit`` queues its ingest
as a background job run as the uploader (202, like ``/ingest``), ``DELETE /uploads/{id}``
discards it. Every route needs the ingest right; a session is its uploader's alone.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi import Path as PathParam

from mlgate.hub.api.deps import Writer
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import ReceivedOut, UploadIn, UploadOut
from mlgate.hub.intake_jobs import submit_upload
from mlgate.hub.uploads import SESSION_PATTERN, UploadStore
from mlgate.registry.ingest import check_name
from mlgate.registry.jobstate import Job
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry

router = APIRouter(prefix="/uploads", tags=["uploads"], responses=ERROR_RESPONSES)

UploadId = Annotated[str, PathParam(pattern=SESSION_PATTERN)]
# A file's path in the model; ingest's own checks follow (control characters: CWE-117/93).
FilePath = Annotated[
    str, PathParam(min_length=1, max_length=4096, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")
]
Sha256 = Annotated[str | None, Header(alias="X-Content-SHA256", pattern=r"^[0-9a-f]{64}$")]


def ingesting_registry(registry: Writer) -> Registry:
    """The request's registry, once its identity is known to hold the ingest right (checked
    before a byte of the body is read)."""
    registry.require(Action.INGEST)
    return registry


Ingester = Annotated[Registry, Depends(ingesting_registry)]


def _store(request: Request) -> UploadStore:
    store: UploadStore = request.app.state.uploads
    return store


@router.post("", response_model=UploadOut, status_code=201)
def create(body: UploadIn, request: Request, registry: Ingester) -> dict[str, Any]:
    """Open an upload session for a new version of model ``name``."""
    check_name(body.name)
    manifest = _store(request).create(
        registry.actor, body.name, owner=body.owner, scan=body.scan, origin=body.origin
    )
    return manifest.summary()


# The body is read as a stream, not declared as a parameter: documented here instead.
_FILE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
    }
}


@router.put(
    "/{upload_id}/files/{path:path}",
    response_model=ReceivedOut,
    status_code=201,
    openapi_extra=_FILE_BODY,
)
async def put_file(
    upload_id: UploadId,
    path: FilePath,
    request: Request,
    registry: Ingester,
    sha256: Sha256 = None,
) -> dict[str, Any]:
    """Receive one file of the session (the request body, streamed to disk; a file sent
    again under the same path replaces the earlier one). Bounded per file and per session
    (413); names are checked as a local ingest checks them (422)."""
    length = request.headers.get("content-length")
    declared = int(length) if length and length.isdigit() else None
    received = await _store(request).receive(
        upload_id, registry.actor, path, request.stream(), declared=declared, sha256=sha256
    )
    return {"path": path, "size": received.size, "sha256": received.sha256}


@router.post("/{upload_id}/commit", response_model=Job, status_code=202)
def commit(upload_id: UploadId, request: Request, registry: Ingester) -> dict[str, Any]:
    """Close the session and queue its ingest (quarantine, scan, policy) as the uploader;
    committing again answers the same job."""
    return submit_upload(registry, request.app.state.queue, _store(request), upload_id).to_json()


@router.delete("/{upload_id}", response_model=UploadOut)
def discard(upload_id: UploadId, request: Request, registry: Ingester) -> dict[str, Any]:
    """Discard a session that is not committed, with the files it received."""
    return _store(request).discard(upload_id, registry.actor).summary()
