"""Lineage and incident response: search the versions a base model, dataset, rule or file
digest affects (with aliases and downloads), and revoke them all with one reason."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlgate.console.web import Viewer, console_of, form_of, see_other, viewer
from mlgate.errors import MlgateError
from mlgate.registry.lineage import KINDS, MAX_VALUE

router = APIRouter()

LABELS = {
    "base_model": "Base model",
    "dataset": "Dataset",
    "rule": "Rule id",
    "digest": "File digest (sha256:…)",
}


@router.get("/lineage")
def lineage_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    params = request.query_params
    done = params.get("revoked", "")
    notice = f"Revoked {done} version(s)." if done.isdigit() else None
    value = params.get("value", "")[:MAX_VALUE]  # longer values are never indexed
    return _render(request, who, params.get("kind", ""), value, notice=notice)


def _render(
    request: Request,
    who: Viewer,
    kind: str,
    value: str,
    *,
    error: str | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    kind = kind if kind in KINDS else "base_model"
    found = who.registry.lineage.affected(kind, value) if value.strip() else None
    context = {
        "kinds": LABELS,
        "kind": kind,
        "value": value,
        "found": found,
        "error": error,
        "notice": notice,
    }
    return console_of(request).render(
        request, "lineage.html", context, status=400 if error else 200
    )


@router.post("/lineage/revoke")
async def revoke(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
    form = await form_of(request)
    kind, value = form.get("kind", ""), form.get("value", "")[:MAX_VALUE]
    reason = form.get("reason", "").strip()
    if kind not in KINDS or not value.strip():
        return _render(request, who, kind, value, error="Search for what is affected first.")
    if not reason:
        return _render(request, who, kind, value, error="A revocation needs a reason.")
    if form.get("confirm") != "yes":
        return _render(request, who, kind, value, error="Tick the box to confirm the revocation.")
    try:
        done = who.registry.lineage.revoke_affected(kind, value, reason)
    except MlgateError as e:
        # A refused role is shown on the page, not a 500.
        return _render(request, who, kind, value, error=f"revoke: {e}")
    query = urlencode({"kind": kind, "value": value, "revoked": len(done.revoked)})
    return see_other(f"/lineage?{query}")
