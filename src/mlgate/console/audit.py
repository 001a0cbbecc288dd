"""The audit log: filtered entries, chain verification with checkpoints (incremental, see
chain.py), JSON-lines export."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, StreamingResponse

from mlgate.console import chain
from mlgate.console.web import Viewer, console_of, page_number, text, viewer
from mlgate.registry import audit as log
from mlgate.registry.roles import Action
from mlgate.registry.views import AuditQuery, audit_actions, audit_page

router = APIRouter()


def _query(request: Request) -> AuditQuery:
    p = request.query_params
    return AuditQuery(
        actor=text(p, "actor"),
        action=text(p, "action"),
        model=text(p, "model"),
        since=text(p, "since"),
        until=text(p, "until"),
        page=page_number(p),
    )


@router.get("/audit")
def audit_page_view(request: Request, who: Annotated[Viewer, Depends(viewer)]) -> HTMLResponse:
    q = _query(request)
    registry = who.registry
    with registry.context.read(Action.READ) as conn:
        rows, total = audit_page(conn, q)
        actions = audit_actions(conn)
        checkpoints = log.read_checkpoints(conn)[-10:]
    console = console_of(request)
    full = request.query_params.get("verify") == "full"
    console.audit_chain = verified = chain.verify(registry, console.audit_chain, full)
    params = {k: v for k, v in request.query_params.items() if k not in ("page", "verify") and v}
    entries = [(r, json.dumps(json.loads(r.details), sort_keys=True)) for r in rows]
    return console.render(
        request,
        "audit.html",
        {
            "q": q,
            "entries": entries,
            "total": total,
            "pages": max(1, -(-total // q.per_page)),
            "link": lambda page: "?" + urlencode({**params, "page": page}),
            "actions": actions,
            "verification": verified.result,
            "chain": verified,
            "full_every": int(chain.FULL_EVERY_SECONDS),
            "checkpoints": list(reversed(checkpoints)),
        },
    )


@router.get("/audit/export")
def audit_export(who: Annotated[Viewer, Depends(viewer)]) -> StreamingResponse:
    """The whole log and its checkpoints as JSON lines (what ``audit verify`` re-checks)."""
    who.registry.require(Action.READ)  # before the 200 is sent: the export runs lazily
    lines = (line + "\n" for line in who.registry.audit_export())
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"content-disposition": 'attachment; filename="mlgate-audit.jsonl"'},
    )
