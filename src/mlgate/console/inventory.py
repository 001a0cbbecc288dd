"""The inventory: every model with its newest version, filtered, sorted and paginated in SQL."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse

from mlgate.console.web import Viewer, console_of, page_number, text, viewer
from mlgate.registry.lifecycle import State
from mlgate.registry.roles import Action
from mlgate.registry.views import RISKS, SORTS, InventoryQuery, facets, inventory

router = APIRouter()


def _query(request: Request) -> InventoryQuery:
    """The page's query from its URL; unknown or malformed values fall back to defaults."""
    p = request.query_params
    return InventoryQuery(
        search=text(p, "search"),
        state=text(p, "state"),
        risk=text(p, "risk"),
        source=text(p, "source"),
        format=text(p, "format"),
        owner=text(p, "owner"),
        sort=p.get("sort", "name") if p.get("sort") in SORTS else "name",
        descending=p.get("desc") == "1",
        page=page_number(p),
    )


@router.get("/")
def inventory_page(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    q = _query(request)
    with who.registry.context.read(Action.READ) as conn:
        rows, total = inventory(conn, q)
        offered = facets(conn)
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "sort", "desc")}

    def link(**changes: object) -> str:
        merged = {**params, "sort": q.sort, "desc": "1" if q.descending else "", **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v not in ("", None)})

    pages = max(1, -(-total // q.per_page))
    return console_of(request).render(
        request,
        "inventory.html",
        {
            "q": q,
            "rows": rows,
            "total": total,
            "pages": pages,
            "link": link,
            "sorts": SORTS,
            "states": [s.value for s in State],
            "risks": RISKS,
            "facets": offered,
        },
    )
