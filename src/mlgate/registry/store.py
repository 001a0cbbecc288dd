"""Reading and writing registry rows: the one place that knows the table layout."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Insert, Row, func, select

from mlgate.registry import schema as t
from mlgate.registry.errors import NotFound
from mlgate.registry.lifecycle import State
from mlgate.registry.records import (
    Decision,
    Download,
    FileRecord,
    ModelSummary,
    Source,
    StateChange,
    Version,
)


def now() -> str:
    """The current UTC time as stored (ISO 8601, microseconds)."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def insert_id(conn: Connection, statement: Insert) -> int:
    """Run an insert and return the new row's integer primary key."""
    key = conn.execute(statement).inserted_primary_key
    assert key is not None
    return int(key[0])


def get_setting(conn: Connection, key: str) -> str | None:
    """A registry-wide setting."""
    return conn.execute(select(t.settings.c.value).where(t.settings.c.key == key)).scalar()


def put_setting(conn: Connection, key: str, value: str) -> None:
    """Create or replace a setting."""
    conn.execute(t.settings.delete().where(t.settings.c.key == key))
    conn.execute(t.settings.insert().values(key=key, value=value))


def model_row(conn: Connection, name: str) -> Row[Any]:
    """The ``models`` row of ``name``."""
    row = conn.execute(select(t.models).where(t.models.c.name == name)).first()
    if row is None:
        raise NotFound(f"no model named {name!r} in the registry")
    return row


def version_row(conn: Connection, name: str, selector: str | None) -> Row[Any]:
    """The ``versions`` row of ``name@selector`` (a number, an alias, or None: the newest)."""
    model = model_row(conn, name)
    query = select(t.versions).where(t.versions.c.model_id == model.id)
    if selector is None:
        row = conn.execute(query.order_by(t.versions.c.number.desc()).limit(1)).first()
    elif selector.isdigit():
        row = conn.execute(query.where(t.versions.c.number == int(selector))).first()
    else:
        target = conn.execute(
            select(t.aliases.c.version_id).where(
                t.aliases.c.model_id == model.id, t.aliases.c.alias == selector
            )
        ).scalar()
        row = (
            None
            if target is None
            else conn.execute(select(t.versions).where(t.versions.c.id == target)).first()
        )
    if row is None:
        raise NotFound(f"{name}@{selector or 'latest'} does not exist")
    return row


def next_number(conn: Connection, model_id: int) -> int:
    """The number the next version of the model gets."""
    top = conn.execute(
        select(func.max(t.versions.c.number)).where(t.versions.c.model_id == model_id)
    ).scalar()
    return int(top or 0) + 1


def record_state(
    conn: Connection, version_id: int, old: State | None, new: State, actor: str, reason: str
) -> None:
    """Set a version's state and append the change to its history."""
    conn.execute(t.versions.update().where(t.versions.c.id == version_id).values(state=new.value))
    conn.execute(
        t.state_history.insert().values(
            version_id=version_id,
            from_state=old.value if old else None,
            to_state=new.value,
            actor=actor,
            reason=reason,
            at=now(),
        )
    )


def files_of(conn: Connection, version_id: int) -> tuple[FileRecord, ...]:
    """A version's files in path order."""
    rows = conn.execute(
        select(t.files).where(t.files.c.version_id == version_id).order_by(t.files.c.path)
    )
    return tuple(FileRecord(r.path, r.digest, r.size, r.format) for r in rows)


def aliases_of(conn: Connection, version_id: int) -> tuple[str, ...]:
    """Aliases that point at the version."""
    rows = conn.execute(
        select(t.aliases.c.alias)
        .where(t.aliases.c.version_id == version_id)
        .order_by(t.aliases.c.alias)
    )
    return tuple(r.alias for r in rows)


def to_version(conn: Connection, row: Row[Any], name: str, detail: bool) -> Version:
    """A :class:`Version` from its row; ``detail`` adds files, history and documents."""
    base = version_record(row, name, aliases_of(conn, row.id), _number_of(conn, row.converted_from))
    if not detail:
        return base
    return Version(
        **{
            **vars(base),
            "files": files_of(conn, row.id),
            "decisions": tuple(
                Decision(d.actor, d.decision, d.reason, d.at)
                for d in conn.execute(
                    select(t.decisions)
                    .where(t.decisions.c.version_id == row.id)
                    .order_by(t.decisions.c.id)
                )
            ),
            "history": history_of(conn, [row.id]),
            "downloads": tuple(
                Download(d.path, d.actor, d.at)
                for d in conn.execute(
                    select(t.downloads)
                    .where(t.downloads.c.version_id == row.id)
                    .order_by(t.downloads.c.id)
                )
            ),
            "scan_report": _json(row.scan_report),
            "dynamic_report": _json(row.dynamic_report),
            "bom": _json(row.bom),
        }
    )


def version_record(
    row: Row[Any], name: str, aliases: tuple[str, ...], converted_from: int | None
) -> Version:
    """A :class:`Version` without details from its row and what other tables say of it."""
    return Version(
        model=name,
        number=row.number,
        state=State(row.state),
        source=Source(
            row.source_kind, row.source_uri, row.repo_id, row.revision, row.requested_revision
        ),
        content_digest=row.content_digest,
        size=row.size,
        formats=tuple(json.loads(row.formats)),
        license=row.license,
        owner=row.owner,
        ingested_at=row.ingested_at,
        ingested_by=row.ingested_by,
        risk=row.risk,
        aliases=aliases,
        signature=row.signature,
        signed_by=row.signed_by,
        converted_from=converted_from,
    )


def version_records(
    conn: Connection, rows: Sequence[Row[Any]], name: str, model_id: int
) -> tuple[Version, ...]:
    """Versions of one model without details, their aliases read in one query (the hub
    resolves every request against these)."""
    aliases: dict[int, list[str]] = defaultdict(list)
    query = select(t.aliases).where(t.aliases.c.model_id == model_id).order_by(t.aliases.c.alias)
    for a in conn.execute(query):
        aliases[a.version_id].append(a.alias)
    numbers = {r.id: r.number for r in rows}
    return tuple(
        version_record(
            r,
            name,
            tuple(aliases[r.id]),
            numbers[r.converted_from]
            if r.converted_from in numbers
            else _number_of(conn, r.converted_from),
        )
        for r in rows
    )


def model_summaries(conn: Connection) -> list[ModelSummary]:
    """Every model with its versions, in three queries whatever the inventory's size
    (one per model and per version made ``models list`` slow at a few hundred models)."""
    versions: dict[int, list[Row[Any]]] = defaultdict(list)
    numbers: dict[int, int] = {}
    for row in conn.execute(select(t.versions).order_by(t.versions.c.number)):
        versions[row.model_id].append(row)
        numbers[row.id] = row.number
    aliases: dict[int, list[str]] = defaultdict(list)
    for a in conn.execute(select(t.aliases).order_by(t.aliases.c.alias)):
        aliases[a.version_id].append(a.alias)
    result = []
    for m in conn.execute(select(t.models).order_by(t.models.c.name)):
        records = tuple(
            version_record(r, m.name, tuple(aliases[r.id]), numbers.get(r.converted_from or -1))
            for r in versions[m.id]
        )
        named = {a: v.number for v in records for a in v.aliases}
        result.append(ModelSummary(m.name, m.owner, m.created_at, records, named))
    return result


def history_of(conn: Connection, version_ids: list[int]) -> tuple[StateChange, ...]:
    """State changes of the given versions, oldest first."""
    rows = conn.execute(
        select(t.state_history, t.versions.c.number)
        .join(t.versions, t.versions.c.id == t.state_history.c.version_id)
        .where(t.state_history.c.version_id.in_(version_ids))
        .order_by(t.state_history.c.id)
    )
    return tuple(
        StateChange(r.number, r.from_state, r.to_state, r.actor, r.reason, r.at) for r in rows
    )


def _number_of(conn: Connection, version_id: int | None) -> int | None:
    if version_id is None:
        return None
    number = conn.execute(select(t.versions.c.number).where(t.versions.c.id == version_id))
    return number.scalar()


def _json(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))
