"""Aliases (``name@production``): pointing, rollback, and fall-back when a version is revoked.

Every move is kept in the alias history, which is what rollback and fall-back walk back through.
"""

from __future__ import annotations

from sqlalchemy import Connection, select

from mlgate.registry import schema as t
from mlgate.registry import store
from mlgate.registry.context import RegistryContext
from mlgate.registry.errors import NotFound, RegistryError, TransitionRefused
from mlgate.registry.lifecycle import State
from mlgate.registry.records import Version
from mlgate.registry.roles import Action


class Aliases:
    """Named pointers to published versions."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def set_alias(self, name: str, alias: str, ref: str) -> Version:
        """Point ``alias`` (e.g. ``production``) of model ``name`` at a published version."""
        with self.ctx.write(Action.ALIAS) as conn:
            row = self.ctx.row(conn, ref if "@" in ref else f"{name}@{ref}")
            self.point(conn, row.model_id, alias, row.id, name)
        return self.ctx.show(f"{name}@{alias}")

    def rollback(self, name: str, alias: str, to: str | None = None) -> Version:
        """Move ``alias`` back to the version it pointed at before (or to version ``to``)."""
        with self.ctx.write(Action.ALIAS) as conn:
            model = store.model_row(conn, name)
            current = conn.execute(
                select(t.aliases.c.version_id).where(
                    t.aliases.c.model_id == model.id, t.aliases.c.alias == alias
                )
            ).scalar()
            if current is None:
                raise NotFound(f"{name} has no alias {alias!r}")
            if to is not None:
                target = store.version_row(conn, name, to).id
            else:
                target = self._previous_target(conn, model.id, alias, current)
                if target is None:
                    raise TransitionRefused(
                        f"{name}@{alias} has no earlier published version to roll back to"
                    )
            self.point(conn, model.id, alias, target, name, action="rollback")
        return self.ctx.show(f"{name}@{alias}")

    def point(
        self,
        conn: Connection,
        model_id: int,
        alias: str,
        version_id: int,
        name: str,
        action: str = "alias",
    ) -> None:
        if not alias or alias.isdigit() or "@" in alias or len(alias) > 64:
            raise RegistryError(f"invalid alias {alias!r}: a name that is not a number")
        row = conn.execute(select(t.versions).where(t.versions.c.id == version_id)).one()
        if State(row.state) is not State.PUBLISHED:
            raise TransitionRefused(
                f"{name}@{row.number} is {row.state}: only a published version can be {alias}"
            )
        self._move_alias(conn, model_id, alias, version_id)
        self.ctx.append_audit(conn, action, f"{name}@{alias}", {"version": row.number})

    def _move_alias(
        self, conn: Connection, model_id: int, alias: str, version_id: int | None
    ) -> None:
        """Point ``alias`` at ``version_id`` (None: remove it) and record it in its history."""
        conn.execute(
            t.aliases.delete().where(t.aliases.c.model_id == model_id, t.aliases.c.alias == alias)
        )
        if version_id is not None:
            conn.execute(
                t.aliases.insert().values(model_id=model_id, alias=alias, version_id=version_id)
            )
        conn.execute(
            t.alias_history.insert().values(
                model_id=model_id,
                alias=alias,
                version_id=version_id,
                actor=self.ctx.actor,
                at=store.now(),
            )
        )

    def _previous_target(
        self, conn: Connection, model_id: int, alias: str, current: int
    ) -> int | None:
        rows = conn.execute(
            select(t.alias_history.c.version_id, t.versions.c.state)
            .join(t.versions, t.versions.c.id == t.alias_history.c.version_id)
            .where(t.alias_history.c.model_id == model_id, t.alias_history.c.alias == alias)
            .order_by(t.alias_history.c.id.desc())
        )
        for r in rows:
            if r.version_id != current and State(r.state) is State.PUBLISHED:
                return int(r.version_id)
        return None

    def fall_back(self, conn: Connection, model_id: int, revoked_id: int) -> None:
        name = conn.execute(select(t.models.c.name).where(t.models.c.id == model_id)).scalar()
        rows = conn.execute(
            select(t.aliases.c.alias).where(
                t.aliases.c.model_id == model_id, t.aliases.c.version_id == revoked_id
            )
        ).all()
        for (alias,) in rows:
            target = self._previous_target(conn, model_id, alias, revoked_id)
            if target is not None:
                self.point(conn, model_id, alias, target, str(name), action="fallback")
                continue
            self._move_alias(conn, model_id, alias, None)
            self.ctx.append_audit(conn, "unalias", f"{name}@{alias}", {"reason": "version revoked"})
