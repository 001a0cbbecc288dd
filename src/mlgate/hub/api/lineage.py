"""Lineage routes: what a version was built from, which versions a base model, dataset,
rule or file digest affects (with their deployment), and the bulk revoke of an incident."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from mlgate.hub.api.deps import Reader, Ref, Writer
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import (
    AffectedOut,
    BulkRevocationOut,
    BulkRevokeIn,
    LineageKind,
    LineageOut,
    LineageValue,
)
from mlgate.render.escape import json_safe

router = APIRouter(tags=["lineage"], responses=ERROR_RESPONSES)


@router.get("/lineage/{ref:path}", response_model=LineageOut)
def built_from(ref: Ref, registry: Reader) -> dict[str, Any]:
    """The base models and datasets a version was built from (card, config, ML-BOM)."""
    sources = registry.lineage.built_from(ref)
    body: dict[str, Any] = json_safe({"version": ref, "built_from": [vars(s) for s in sources]})
    return body


@router.get("/affected", response_model=AffectedOut)
def affected(
    kind: Annotated[LineageKind, Query()],
    value: Annotated[LineageValue, Query()],
    registry: Reader,
) -> dict[str, Any]:
    """Every version deriving from or containing ``value``, with aliases and downloads."""
    found = registry.lineage.affected(kind, value)
    body: dict[str, Any] = json_safe(
        {"kind": kind, "value": value, "affected": [a.to_json() for a in found]}
    )
    return body


@router.post("/affected/revoke", response_model=BulkRevocationOut)
def revoke_affected(body: BulkRevokeIn, registry: Writer) -> dict[str, Any]:
    """Revoke every affected version that can be, with one reason (audited per version;
    aliases fall back as for a single revoke)."""
    done: dict[str, Any] = json_safe(
        registry.lineage.revoke_affected(body.kind, body.value, body.reason).to_json()
    )
    return done
