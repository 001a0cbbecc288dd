"""Inventory routes: models and versions, history, scan findings and the ML-BOM (reads)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mlgate.hub.api.deps import ModelName, Reader, Ref, version_body
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import ModelOut, VersionOut
from mlgate.registry.errors import NotFound
from mlgate.registry.records import StateChange
from mlgate.render.escape import json_safe

router = APIRouter(tags=["models"], responses=ERROR_RESPONSES)


@router.get("/models", response_model=list[ModelOut])
def list_models(registry: Reader) -> list[dict[str, Any]]:
    """Every model with its versions (states, risks, aliases; no per-version detail)."""
    return [
        {
            "name": m.name,
            "owner": m.owner,
            "created_at": m.created_at,
            "aliases": m.aliases,
            "versions": [version_body(v) for v in m.versions],
        }
        for m in registry.models()
    ]


@router.get("/versions/{ref:path}", response_model=VersionOut)
def show_version(ref: Ref, registry: Reader) -> dict[str, Any]:
    """Everything recorded about one version (``name@N``, ``name@alias`` or ``name``)."""
    return version_body(registry.show(ref))


@router.get("/history/{name:path}", response_model=list[StateChange])
def history(name: ModelName, registry: Reader) -> tuple[StateChange, ...]:
    """Every state change of every version of model ``name``, oldest first."""
    return registry.history(name)


@router.get("/findings/{ref:path}", response_model=dict[str, Any])
def findings(ref: Ref, registry: Reader) -> dict[str, Any]:
    """The static scan report of a version (the findings a reviewer judges)."""
    version = registry.show(ref)
    return _attached(version.scan_report, f"{version.ref} has not been scanned yet")


@router.get("/boms/{ref:path}", response_model=dict[str, Any])
def bom(ref: Ref, registry: Reader) -> dict[str, Any]:
    """The CycloneDX ML-BOM attached to a published version."""
    version = registry.show(ref)
    return _attached(version.bom, f"{version.ref} has no BOM: it is generated when published")


def _attached(document: dict[str, Any] | None, missing: str) -> dict[str, Any]:
    if document is None:
        raise NotFound(missing)
    safe: dict[str, Any] = json_safe(document)
    return safe
