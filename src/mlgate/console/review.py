"""The review queue: scanned versions waiting for a decision, oldest first, with approve and
reject forms recorded under the logged-in identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response

from mlgate.console.web import Viewer, console_of, form_of, see_other, viewer
from mlgate.errors import MlgateError
from mlgate.registry.records import Version
from mlgate.registry.roles import Action
from mlgate.registry.service import Registry
from mlgate.registry.views import awaiting_review

router = APIRouter()

# Versions shown at once, oldest first (each is read in full: findings and decisions).
QUEUE_PAGE = 100


@router.get("/review")
def review_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    return _render(request, who)


def _render(request: Request, who: Viewer, error: str | None = None) -> HTMLResponse:
    registry = who.registry
    with registry.context.read(Action.READ) as conn:
        waiting, total = awaiting_review(conn, QUEUE_PAGE)
    items = []
    for name, number in waiting:
        version = registry.show(f"{name}@{number}")
        items.append((version, registry.pending_reason(version), _duty_note(who, version)))
    return console_of(request).render(
        request,
        "review.html",
        {"items": items, "total": total, "error": error},
        status=400 if error else 200,
    )


def _duty_note(who: Viewer, version: Version) -> str | None:
    """Separation of duties, said before the reviewer tries: who may not approve this."""
    if not who.registry.policy.separation_of_duties:
        return None
    if version.ingested_by == who.principal:
        return "You ingested this; another reviewer must approve it."
    if any(d.actor == who.principal and d.decision == "approve" for d in version.decisions):
        return "You approved this already; another reviewer must approve it."
    return None


def _decide(action: str, decide: Callable[[Registry, str, str], Version]) -> None:
    async def route(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> Response:
        form = await form_of(request)
        ref, reason = form.get("ref", ""), form.get("reason", "").strip()
        if not reason:
            return _render(request, who, error=f"{action}: a reason is required")
        try:
            version = decide(who.registry, ref, reason)
        except MlgateError as e:
            # Refusals (roles, separation of duties, lifecycle) are shown, not a 500.
            return _render(request, who, error=f"{action} {ref}: {e}")
        # The version's page shows the outcome, and why an approval is still pending.
        return see_other(f"/models/{version.model}?v={version.number}")

    router.add_api_route(f"/review/{action}", route, methods=["POST"], response_model=None)


_decide("approve", Registry.approve)
_decide("reject", Registry.reject)
