"""Lifecycle routes: review (approve, reject), publication (publish, deprecate, revoke) and
intake (ingest from the hub's upstream, rescan).

Each acts as the bearer token's identity, so roles, separation of duties and the audit log
see who really asked. Ingest and rescan run in the request for now; they move onto the
background job queue (see :mod:`mlgate.hub`) without changing these routes' contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from mlgate.hub.api.deps import Ref, Writer, version_body
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import IngestIn, PublishIn, ReasonIn, VersionOut
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import IngestRefused
from mlgate.registry.ingest import HubOptions
from mlgate.registry.roles import Action
from mlgate.registry.sources import parse_source

router = APIRouter(tags=["lifecycle"], responses=ERROR_RESPONSES)


@router.post("/approve/{ref:path}", response_model=VersionOut)
def approve(ref: Ref, body: ReasonIn, registry: Writer) -> dict[str, Any]:
    """Record the token owner's approval (reviewer); approved once policy is satisfied."""
    return version_body(registry.approve(ref, body.reason))


@router.post("/reject/{ref:path}", response_model=VersionOut)
def reject(ref: Ref, body: ReasonIn, registry: Writer) -> dict[str, Any]:
    """Reject a scanned version with the reviewer's reason."""
    return version_body(registry.reject(ref, body.reason))


@router.post("/publish/{ref:path}", response_model=VersionOut)
def publish(ref: Ref, body: PublishIn, registry: Writer) -> dict[str, Any]:
    """Sign an approved version with the organisation key, attach its ML-BOM, publish it."""
    return version_body(registry.publish(ref, alias=body.alias))


@router.post("/deprecate/{ref:path}", response_model=VersionOut)
def deprecate(ref: Ref, body: ReasonIn, registry: Writer) -> dict[str, Any]:
    """Deprecate a published version (still served)."""
    return version_body(registry.deprecate(ref, body.reason))


@router.post("/revoke/{ref:path}", response_model=VersionOut)
def revoke(ref: Ref, body: ReasonIn, registry: Writer) -> dict[str, Any]:
    """Revoke a version; aliases on it fall back to the previous published version."""
    return version_body(registry.revoke(ref, body.reason))


@router.post("/rescan/{ref:path}", response_model=VersionOut)
def rescan(ref: Ref, registry: Writer) -> dict[str, Any]:
    """Scan a quarantined (or re-scan a scanned) version and apply the auto-reject policy."""
    return version_body(registry.scan(ref))


@router.post("/ingest", response_model=VersionOut)
def ingest(body: IngestIn, request: Request, registry: Writer) -> dict[str, Any]:
    """Quarantine ``hf://ORG/NAME[@REV]`` from the hub's upstream, scan it, apply policy."""
    registry.require(Action.INGEST)  # who may ingest is answered before what
    settings: HubSettings = request.app.state.settings
    if parse_source(body.source)[0] != "huggingface":
        raise IngestRefused("the hub ingests hf://ORG/NAME[@REV] sources only")
    if settings.upstream is None:
        raise IngestRefused("this hub has no upstream: start it with --upstream URL")
    hub = HubOptions(settings.upstream, settings.upstream_token)
    version = registry.ingest(
        body.source, name=body.name, owner=body.owner, hub=hub, scan=body.scan
    )
    return version_body(version)
