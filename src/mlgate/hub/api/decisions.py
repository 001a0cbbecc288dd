"""Lifecycle routes: review (approve, reject), publication (publish, deprecate, revoke) and
intake (ingest from the hub's upstream, rescan).

Each acts as the bearer token's identity, so roles, separation of duties and the audit log
see who really asked. Ingest and rescan run in the request for now; they move onto the
background job queue (see :mod:`mlgate.hub`) without changing these routes' contract.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from mlgate.hub.api.deps import Ref, Writer, version_body
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import IngestIn, PublishIn, ReasonIn, VersionOut
from mlgate.hub.settings import HubSettings
from mlgate.registry.errors import IngestRefused
from mlgate.registry.ingest import HubOptions
from mlgate.registry.records import Version
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry
from mlgate.registry.sources import parse_source

router = APIRouter(tags=["lifecycle"], responses=ERROR_RESPONSES)


def _reasoned(action: str, decide: Callable[[Registry, str, str], Version], summary: str) -> None:
    """``POST /{action}/{ref}`` with a reason: approve, reject, deprecate, revoke."""

    def route(ref: Ref, body: ReasonIn, registry: Writer) -> dict[str, Any]:
        return version_body(decide(registry, ref, body.reason))

    route.__doc__ = summary
    router.add_api_route(
        f"/{action}/{{ref:path}}",
        route,
        methods=["POST"],
        response_model=VersionOut,
        name=action,
        operation_id=action,
    )


_reasoned(
    "approve",
    Registry.approve,
    "Record the token owner's approval (reviewer); approved once policy agrees.",
)
_reasoned("reject", Registry.reject, "Reject a scanned version with the reviewer's reason.")
_reasoned("deprecate", Registry.deprecate, "Deprecate a published version (still served).")
_reasoned(
    "revoke",
    Registry.revoke,
    "Revoke a version; aliases on it fall back to the previous published one.",
)


@router.post("/publish/{ref:path}", response_model=VersionOut)
def publish(ref: Ref, body: PublishIn, registry: Writer) -> dict[str, Any]:
    """Sign an approved version with the organisation key, attach its ML-BOM, publish it."""
    return version_body(registry.publish(ref, alias=body.alias))


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
