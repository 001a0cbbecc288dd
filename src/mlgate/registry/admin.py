"""Administration: the policy and the users with their roles."""

from __future__ import annotations

import json

from sqlalchemy import select

from mlgate.registry import schema as t
from mlgate.registry import store
from mlgate.registry.context import POLICY_SETTING, RegistryContext
from mlgate.registry.errors import RegistryError
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.roles import Action, Role, parse_roles


class Admin:
    """Policy and user management (admin only, audited)."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def set_policy(self, policy: RegistryPolicy) -> None:
        """Replace the policy (admin only; audited)."""
        with self.ctx.write(Action.ADMINISTER) as conn:
            store.put_setting(conn, POLICY_SETTING, policy.to_json())
            self.ctx.append_audit(conn, "policy", "registry", json.loads(policy.to_json()))

    def add_user(self, name: str, roles: str | frozenset[Role]) -> None:
        """Create or update a user with ``roles`` (admin only; audited)."""
        wanted = parse_roles(roles) if isinstance(roles, str) else roles
        if not name or len(name) > 128:
            raise RegistryError("a user name must be 1 to 128 characters")
        with self.ctx.write(Action.ADMINISTER) as conn:
            text = ",".join(sorted(r.value for r in wanted))
            # Updated in place: the user's API tokens refer to the row.
            updated = conn.execute(
                t.principals.update().where(t.principals.c.name == name).values(roles=text)
            )
            if not updated.rowcount:
                conn.execute(
                    t.principals.insert().values(
                        name=name, roles=text, created_at=store.now(), created_by=self.ctx.actor
                    )
                )
            self.ctx.append_audit(conn, "user", name, {"roles": sorted(r.value for r in wanted)})

    def users(self) -> dict[str, tuple[str, ...]]:
        """Every user and their roles."""
        with self.ctx.read(Action.READ) as conn:
            rows = conn.execute(select(t.principals).order_by(t.principals.c.name))
            return {r.name: tuple(r.roles.split(",")) for r in rows}
