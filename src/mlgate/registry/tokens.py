"""Bearer tokens: how the hub knows who is asking, instead of trusting a claimed ``--as``.

A token reads ``mlg_<id>_<secret>``: the id finds the row, the secret (256 random bits) is
compared with its stored SHA-256 in constant time. Tokens are scoped to a subset of their
owner's roles, may expire, and are revocable; the owner's roles are read on every request,
so taking a role from a user takes it from their tokens at once.

Creating, revoking and listing are audited registry operations like any other: a user
manages their own tokens, an admin everyone's. The secret is shown once and never stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, select

from mlgate.registry import database, store
from mlgate.registry import schema as t
from mlgate.registry.context import RegistryContext
from mlgate.registry.errors import NotFound, PermissionDenied, RegistryError, Unauthenticated
from mlgate.registry.roles import Action, Role, narrow, parse_roles

TOKEN_PREFIX = "mlg_"  # noqa: S105  (a prefix that tells tokens apart, not a secret)
_TOKEN = re.compile(r"mlg_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_MAX_LABEL = 128


@dataclass(frozen=True)
class TokenInfo:
    """What is recorded about a token (never its secret)."""

    id: str
    principal: str
    label: str
    roles: tuple[str, ...]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None

    def status(self, at: str) -> str:
        """``active``, ``expired`` or ``revoked`` at time ``at`` (an ISO timestamp)."""
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at <= at:
            return "expired"
        return "active"


@dataclass(frozen=True)
class NewToken:
    """A token just created: ``secret`` is the only copy of the bearer value."""

    info: TokenInfo
    secret: str


@dataclass(frozen=True)
class Identity:
    """Who an authenticated request acts as, and the roles it may use."""

    principal: str
    roles: frozenset[Role]
    token_id: str


class Tokens:
    """Create, list, revoke and authenticate hub API tokens."""

    def __init__(self, ctx: RegistryContext) -> None:
        self.ctx = ctx

    def create(
        self,
        principal: str | None = None,
        *,
        label: str,
        roles: str | frozenset[Role] | None = None,
        expires_in: timedelta | None = None,
    ) -> NewToken:
        """A token for ``principal`` (default: the actor) limited to ``roles`` (default:
        all the principal's roles); only an admin creates tokens for someone else."""
        owner = principal or self.ctx.actor
        if not label or len(label) > _MAX_LABEL or not label.isprintable():
            raise RegistryError(f"a token label must be 1 to {_MAX_LABEL} printable characters")
        if expires_in is not None and expires_in <= timedelta(0):
            raise RegistryError("a token's lifetime must be positive")
        with self.ctx.write(self._action_on(owner)) as conn:
            if not self.ctx.roles_of(conn, owner):
                raise NotFound(f"no user {owner!r}: an admin adds users first")
            # A request made with a scoped token may not mint a wider one for its owner.
            held = self._grantable(conn, owner)
            wanted = held if roles is None else _roles(roles)
            if narrow(held, wanted) != wanted:
                extra = ", ".join(sorted(r.value for r in wanted - narrow(held, wanted)))
                raise PermissionDenied(f"{owner} may not act as {extra}: a token cannot add roles")
            token_id = secrets.token_hex(8)
            secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
            info = self._insert(conn, token_id, _hash(secret), owner, label, wanted, expires_in)
            self.ctx.append_audit(conn, "token-create", owner, _details(info))
        return NewToken(info, secret)

    def list(self, principal: str | None = None) -> list[TokenInfo]:
        """Tokens of ``principal`` (default: the actor's own; everyone's for ``"*"``)."""
        owner = principal or self.ctx.actor
        action = Action.ADMINISTER if owner == "*" else self._action_on(owner)
        with self.ctx.read(action) as conn:
            query = select(t.tokens).order_by(t.tokens.c.created_at, t.tokens.c.id)
            if owner != "*":
                query = query.where(t.tokens.c.principal == owner)
            return [_info(r) for r in conn.execute(query)]

    def revoke(self, token_id: str) -> TokenInfo:
        """Revoke a token for good (its owner or an admin)."""
        with database.read_transaction(self.ctx.engine) as conn:
            row = conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).first()
        if row is None:
            raise NotFound(f"no token {token_id!r}")
        with self.ctx.write(self._action_on(row.principal)) as conn:
            at = store.now()
            done = conn.execute(
                t.tokens.update()
                .where(t.tokens.c.id == token_id, t.tokens.c.revoked_at.is_(None))
                .values(revoked_at=at, revoked_by=self.ctx.actor)
            )
            if not done.rowcount:
                raise RegistryError(f"token {token_id} is already revoked")
            info = _info(conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).one())
            self.ctx.append_audit(conn, "token-revoke", info.principal, _details(info))
        return info

    def authenticate(self, bearer: str) -> Identity:
        """The identity behind a bearer value, or :class:`Unauthenticated` saying why not."""
        match = _TOKEN.fullmatch(bearer.strip())
        if match is None:
            raise Unauthenticated("the token is not an mlgate token (mlg_...)")
        row = self._with_roles(match.group(1))
        # Compared even when the id is unknown, so timing does not tell ids apart.
        stored = row.secret_hash if row is not None else "0" * 64
        if not hmac.compare_digest(stored, _hash(bearer.strip())) or row is None:
            raise Unauthenticated("unknown token")
        return _identity(row)

    def identity(self, token_id: str) -> Identity:
        """The identity of token ``token_id`` as it is now, for a caller that checked the
        secret earlier (the console's session): :class:`Unauthenticated` once the token is
        revoked or expired, or its owner lost the roles."""
        row = self._with_roles(token_id)
        if row is None:
            raise Unauthenticated("unknown token")
        return _identity(row)

    def _with_roles(self, token_id: str) -> Any:
        # One query on every request: the token with its owner's roles as they are now.
        query = (
            select(t.tokens, t.principals.c.roles.label("held"))
            .join(t.principals, t.principals.c.name == t.tokens.c.principal)
            .where(t.tokens.c.id == token_id)
        )
        with database.read_transaction(self.ctx.engine) as conn:
            return conn.execute(query).first()

    def _grantable(self, conn: Connection, owner: str) -> frozenset[Role]:
        """The roles a new token of ``owner`` may carry (or any they cover): the owner's,
        narrowed to the caller's scope when the caller is the owner (an admin grants
        others' in full)."""
        if owner == self.ctx.actor:
            return self.ctx.actor_roles(conn)
        return self.ctx.roles_of(conn, owner)

    def _action_on(self, owner: str) -> Action:
        # Anyone with a role manages their own tokens; someone else's needs an admin.
        return Action.READ if owner == self.ctx.actor else Action.ADMINISTER

    def _insert(
        self,
        conn: Connection,
        token_id: str,
        secret_hash: str,
        owner: str,
        label: str,
        roles: frozenset[Role],
        expires_in: timedelta | None,
    ) -> TokenInfo:
        created = datetime.now(UTC)
        values = {
            "id": token_id,
            "principal": owner,
            "label": label,
            "roles": ",".join(sorted(r.value for r in roles)),
            "secret_hash": secret_hash,
            "created_at": created.isoformat(timespec="microseconds"),
            "created_by": self.ctx.actor,
            "expires_at": (created + expires_in).isoformat(timespec="microseconds")
            if expires_in
            else None,
        }
        conn.execute(t.tokens.insert().values(**values))
        return _info(conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).one())


def _roles(roles: str | frozenset[Role]) -> frozenset[Role]:
    wanted = parse_roles(roles) if isinstance(roles, str) else roles
    if not wanted:
        raise RegistryError("a token needs at least one role")
    return wanted


def _identity(row: Any) -> Identity:
    info = _info(row)
    status = info.status(store.now())
    if status != "active":
        raise Unauthenticated(f"token {info.id} ({info.label}) is {status}")
    roles = narrow(parse_roles(row.held), parse_roles(",".join(info.roles)))
    return Identity(info.principal, roles, info.id)


def _hash(bearer: str) -> str:
    return hashlib.sha256(bearer.encode()).hexdigest()


def _info(r: Any) -> TokenInfo:
    """A row of the tokens table as a record."""
    return TokenInfo(
        r.id,
        r.principal,
        r.label,
        tuple(filter(None, r.roles.split(","))),
        r.created_at,
        r.created_by,
        r.expires_at,
        r.revoked_at,
        r.revoked_by,
    )


def _details(info: TokenInfo) -> dict[str, object]:
    return {
        "token": info.id,
        "label": info.label,
        "roles": list(info.roles),
        "expires_at": info.expires_at,
        "revoked": info.revoked_at is not None,
    }
