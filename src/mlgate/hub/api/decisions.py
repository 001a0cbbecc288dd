"""Lifecycle routes: review (approve, reject), publication (publish, deprecate, revoke) and
intake (ingest from the hub's upstream, rescan).

Each acts as the bearer token's identity, so roles, separation of duties and the audit log
see who really asked. Ingest and rescan take minutes on large models: they are submitted as
background jobs (:mod:`mlgate.hub.intake_jobs`) and answered ``202`` with the job, whose
progress ``GET /jobs/{key}`` shows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request

from mlgate.hub import pullthrough
from mlgate.hub.api.deps import Ref, Writer, version_body
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import IngestIn, PublishIn, ReasonIn, VersionOut
from mlgate.hub.intake_jobs import submit_ingest, submit_scan
from mlgate.hub.settings import HubSettings
from mlgate.registry.jobstate import Job
from mlgate.registry.lifecycle import State
from mlgate.registry.records import Version
from mlgate.registry.service import Registry

router = APIRouter(tags=["lifecycle"], responses=ERROR_RESPONSES)


def _reasoned(action: str, decide: Callable[[Registry, str, str], Version], summary: str) -> None:
    """``POST /{action}/{ref}`` with a reason: approve, reject, deprecate, revoke."""

    def route(ref: Ref, body: ReasonIn, request: Request, registry: Writer) -> dict[str, Any]:
        version = decide(registry, ref, body.reason)
        if action == "approve" and version.state is State.APPROVED:
            # A pulled-through version approved here is published by a worker, as policy.
            pullthrough.approved(registry, request.app.state.queue, version.ref)
        return version_body(version)

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


@router.post("/rescan/{ref:path}", response_model=Job, status_code=202)
def rescan(ref: Ref, request: Request, registry: Writer) -> dict[str, Any]:
    """Queue a scan (or re-scan) of a version; auto-reject applies when it has run."""
    return submit_scan(registry, request.app.state.queue, ref).to_json()


@router.post("/ingest", response_model=Job, status_code=202)
def ingest(body: IngestIn, request: Request, registry: Writer) -> dict[str, Any]:
    """Queue the ingest of ``hf://ORG/NAME[@REV]`` from the hub's upstream (quarantine, scan,
    policy), as the token's owner."""
    settings: HubSettings = request.app.state.settings
    job = submit_ingest(
        registry,
        request.app.state.queue,
        settings,
        body.source,
        name=body.name,
        owner=body.owner,
        scan=body.scan,
    )
    return job.to_json()
