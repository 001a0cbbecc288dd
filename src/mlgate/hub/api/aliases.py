"""Alias routes: point an alias at a published version, roll it back."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from mlgate.hub.api.deps import ModelName, Writer, version_body
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import AliasIn, RollbackIn, VersionOut

router = APIRouter(tags=["aliases"], responses=ERROR_RESPONSES)


@router.post("/alias/{name:path}", response_model=VersionOut)
def set_alias(name: ModelName, body: AliasIn, registry: Writer) -> dict[str, Any]:
    """Point ``alias`` of model ``name`` at published ``version``; returns the target."""
    return version_body(registry.set_alias(name, body.alias, body.version))


@router.post("/rollback/{name:path}", response_model=VersionOut)
def rollback(name: ModelName, body: RollbackIn, registry: Writer) -> dict[str, Any]:
    """Move ``alias`` back to the version it pointed at before (or to ``to``)."""
    return version_body(registry.rollback(name, body.alias, body.to))
