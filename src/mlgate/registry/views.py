"""Read-only queries behind the web console: one page of the inventory, the review queue,
a model's alias history, the audit log with filters and the pull-through requests.

Each is a few indexed SQL queries bounded by the page asked for, so a page costs the same
with 100 models or 100,000 (``store.model_summaries`` reads every version: right for
``models list``, too slow per page view).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Select, case, func, or_, select

from mlgate.registry import schema as t

RISKS = ("unscanned", "incomplete", "none", "info", "low", "medium", "high", "critical")
SORTS = ("name", "state", "risk", "owner", "source", "ingested")


@dataclass(frozen=True)
class InventoryQuery:
    """Filters (exact values; ``search`` is a substring of the name), sort and page."""

    search: str = ""
    state: str = ""
    risk: str = ""
    source: str = ""
    format: str = ""
    owner: str = ""
    sort: str = "name"
    descending: bool = False
    page: int = 1
    per_page: int = 50


@dataclass(frozen=True)
class InventoryRow:
    """A model and its newest version."""

    name: str
    number: int
    state: str
    risk: str
    source: str
    source_uri: str
    owner: str
    license: str | None
    formats: tuple[str, ...]
    ingested_at: str
    last_scan: str | None


def inventory(conn: Connection, q: InventoryQuery) -> tuple[list[InventoryRow], int]:
    """One page of models (newest version each) matching ``q``, and how many match.

    The filter and the sort run over narrow rows (ids and the sort key: never the scan
    reports, which can be megabytes), then only the page's rows are read in full."""
    v, m = t.versions, t.models
    # The newest version: none newer exists (a correlated probe of the (model_id, number)
    # index; a GROUP BY max() materialised every model first, 2-3x slower at 10,000).
    w = v.alias("w")
    newer = select(w.c.id).where(w.c.model_id == v.c.model_id, w.c.number > v.c.number)
    matching = _filtered(select(v.c.id).join(m, m.c.id == v.c.model_id).where(~newer.exists()), q)
    total = conn.execute(select(func.count()).select_from(matching.subquery())).scalar_one()
    order = _order(q.sort)
    ids = list(
        conn.scalars(
            matching.order_by(order.desc() if q.descending else order.asc(), m.c.name)
            .limit(q.per_page)
            .offset((max(q.page, 1) - 1) * q.per_page)
        )
    )
    columns = [m.c.name, *(v.c[c] for c in _ROW_COLUMNS)]
    rows = {
        r.id: r
        for r in conn.execute(
            select(*columns).join(m, m.c.id == v.c.model_id).where(v.c.id.in_(ids))
        )
    }
    scans = _last_scans(conn, ids)
    return [_row(rows[i], scans.get(i)) for i in ids], total


_ROW_COLUMNS = (
    "id",
    "number",
    "state",
    "risk",
    "source_kind",
    "source_uri",
    "owner",
    "license",
    "formats",
    "ingested_at",
)


def _row(r: Any, last_scan: str | None) -> InventoryRow:
    return InventoryRow(
        r.name,
        r.number,
        r.state,
        r.risk,
        r.source_kind,
        r.source_uri,
        r.owner,
        r.license,
        tuple(json.loads(r.formats)),
        r.ingested_at,
        last_scan,
    )


def _filtered(query: Select[Any], q: InventoryQuery) -> Select[Any]:
    v = t.versions
    if q.search:
        query = query.where(t.models.c.name.icontains(q.search, autoescape=True))
    for column, value in ((v.c.state, q.state), (v.c.risk, q.risk), (v.c.owner, q.owner)):
        if value:
            query = query.where(column == value)
    if q.source:
        query = query.where(v.c.source_kind == q.source)
    if q.format:
        # formats is a JSON list of names: match the quoted element, not a substring of one.
        query = query.where(v.c.formats.contains(json.dumps(q.format), autoescape=True))
    return query


def _order(sort: str) -> Any:
    v = t.versions
    columns: dict[str, Any] = {
        "state": v.c.state,
        "risk": case({r: n for n, r in enumerate(RISKS)}, value=v.c.risk, else_=-1),
        "owner": v.c.owner,
        "source": v.c.source_kind,
        "ingested": v.c.ingested_at,
    }
    return columns.get(sort, t.models.c.name)


def _last_scans(conn: Connection, version_ids: list[int]) -> dict[int, str]:
    """When each version left quarantine (its static scan: to scanned or auto-rejected)."""
    h = t.state_history
    rows = conn.execute(
        select(h.c.version_id, func.max(h.c.at))
        .where(h.c.version_id.in_(version_ids), h.c.from_state == "quarantined")
        .group_by(h.c.version_id)
    )
    return {r[0]: r[1] for r in rows}


def facets(conn: Connection) -> dict[str, list[str]]:
    """The values the inventory's filters offer (sources, formats and owners in use), from
    one scan of the versions table."""
    v = t.versions
    sources: set[str] = set()
    owners: set[str] = set()
    formats: set[str] = set()
    for source, owner, text in conn.execute(
        select(v.c.source_kind, v.c.owner, v.c.formats).distinct()
    ):
        sources.add(source)
        owners.add(owner)
        formats.update(json.loads(text))
    return {"source": sorted(sources), "owner": sorted(owners), "format": sorted(formats)}


def awaiting_review(conn: Connection, limit: int) -> tuple[list[tuple[str, int]], int]:
    """(model, number) of the ``limit`` oldest scanned versions waiting for a decision, and
    how many are waiting."""
    waiting = t.versions.c.state == "scanned"
    total = conn.execute(select(func.count()).where(waiting)).scalar_one()
    rows = conn.execute(
        select(t.models.c.name, t.versions.c.number)
        .join(t.models, t.models.c.id == t.versions.c.model_id)
        .where(waiting)
        .order_by(t.versions.c.ingested_at, t.versions.c.id)
        .limit(limit)
    )
    return [(r.name, r.number) for r in rows], total


@dataclass(frozen=True)
class AliasMove:
    alias: str
    number: int | None
    actor: str
    at: str


def alias_history(conn: Connection, name: str) -> list[AliasMove]:
    """Every move of every alias of model ``name``, newest first (None: removed)."""
    h = t.alias_history
    rows = conn.execute(
        select(h.c.alias, t.versions.c.number, h.c.actor, h.c.at)
        .join(t.models, t.models.c.id == h.c.model_id)
        .outerjoin(t.versions, t.versions.c.id == h.c.version_id)
        .where(t.models.c.name == name)
        .order_by(h.c.id.desc())
    )
    return [AliasMove(r.alias, r.number, r.actor, r.at) for r in rows]


@dataclass(frozen=True)
class AuditQuery:
    actor: str = ""
    action: str = ""
    model: str = ""
    since: str = ""
    until: str = ""
    page: int = 1
    per_page: int = 100


def audit_page(conn: Connection, q: AuditQuery) -> tuple[list[Any], int]:
    """Audit rows matching ``q``, newest first, and how many match. ``model`` matches the
    subject (``name`` or ``name@N``); dates compare as ISO-8601 prefixes."""
    a = t.audit_entries
    query = select(a)
    if q.actor:
        query = query.where(a.c.actor == q.actor)
    if q.action:
        query = query.where(a.c.action == q.action)
    if q.model:
        query = query.where(
            or_(a.c.subject == q.model, a.c.subject.startswith(q.model + "@", autoescape=True))
        )
    if q.since:
        query = query.where(a.c.at >= q.since)
    if q.until:
        # "2026-12-01" includes the whole day: every stamp of it sorts below "2026-12-01~".
        query = query.where(a.c.at <= q.until + "~")
    total = conn.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    rows = conn.execute(
        query.order_by(a.c.seq.desc()).limit(q.per_page).offset((max(q.page, 1) - 1) * q.per_page)
    ).all()
    return list(rows), total


def audit_actions(conn: Connection) -> list[str]:
    a = t.audit_entries
    return list(conn.scalars(select(a.c.action).distinct().order_by(a.c.action)))


def upstream_requests(conn: Connection, limit: int = 500) -> list[Any]:
    """Pull-through requests, newest first, with the registered version they became."""
    u = t.upstream_requests
    query = (
        select(u, t.models.c.name.label("model"), t.versions.c.number)
        .outerjoin(t.versions, t.versions.c.id == u.c.version_id)
        .outerjoin(t.models, t.models.c.id == t.versions.c.model_id)
        .order_by(u.c.requested_at.desc(), u.c.id.desc())
        .limit(limit)
    )
    return list(conn.execute(query))
