"""Audit routes: verify the chain, export it as JSON lines (streamed), sign its head."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from mlgate.hub.api.deps import Reader, Writer
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import VerificationOut
from mlgate.registry import audit
from mlgate.registry.roles import Action

router = APIRouter(prefix="/audit", tags=["audit"], responses=ERROR_RESPONSES)


@router.get("/verify", response_model=VerificationOut)
def verify(registry: Reader) -> dict[str, Any]:
    """Check the hash chain and the signed checkpoints against the registry's recorded key.
    To trust a key of your own, export the log and verify it where you hold that key."""
    result = registry.audit_verify()
    return {
        "entries": result.entries,
        "checkpoints": result.checkpoints,
        "first_bad": result.first_bad,
        "problems": list(result.problems),
    }


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}, "description": "JSON lines"}},
)
def export(registry: Reader) -> StreamingResponse:
    """The log as JSON lines (entries, then checkpoints), streamed."""
    registry.require(Action.READ)  # refused with a status, not halfway through the stream
    return StreamingResponse(_lines(registry.audit_export()), media_type="application/x-ndjson")


def _lines(lines: Iterator[str]) -> Iterator[bytes]:
    for line in lines:
        yield (line + "\n").encode("utf-8", "surrogateescape")


@router.post("/checkpoint", response_model=audit.Checkpoint)
def checkpoint(registry: Writer) -> audit.Checkpoint:
    """Sign the current head of the log now (admin)."""
    return registry.audit_checkpoint()
