"""Pull-through requests: what was asked of the upstream hub, by whom, and where it stands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mlgate.console.web import Viewer, console_of, viewer
from mlgate.registry.roles import Action
from mlgate.registry.views import upstream_requests

router = APIRouter()


@router.get("/requests")
def requests_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    with who.registry.context.read(Action.READ) as conn:
        rows = upstream_requests(conn)
    return console_of(request).render(request, "requests.html", {"rows": rows})
