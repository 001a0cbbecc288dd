"""Roles and what each may do. The registry records the acting identity on every change."""

from __future__ import annotations

from enum import StrEnum

from mlgate.registry.errors import PermissionDenied


class Role(StrEnum):
    """reader: list and download; publisher: ingest and publish; reviewer: approve and
    reject; admin: everything, including users, policy and revocation."""

    READER = "reader"
    PUBLISHER = "publisher"
    REVIEWER = "reviewer"
    ADMIN = "admin"


class Action(StrEnum):
    """Operations subject to a role check."""

    READ = "read"
    DOWNLOAD = "download"
    INGEST = "ingest"
    SCAN = "scan"
    APPROVE = "approve"
    REJECT = "reject"
    PUBLISH = "publish"
    DEPRECATE = "deprecate"
    REVOKE = "revoke"
    ALIAS = "alias"
    ADMINISTER = "administer"


_GRANTS: dict[Role, frozenset[Action]] = {
    Role.READER: frozenset({Action.READ, Action.DOWNLOAD}),
    Role.PUBLISHER: frozenset(
        {
            Action.READ,
            Action.DOWNLOAD,
            Action.INGEST,
            Action.SCAN,
            Action.PUBLISH,
            Action.DEPRECATE,
            Action.ALIAS,
        }
    ),
    Role.REVIEWER: frozenset(
        {Action.READ, Action.DOWNLOAD, Action.SCAN, Action.APPROVE, Action.REJECT}
    ),
    Role.ADMIN: frozenset(Action),
}


def parse_roles(text: str) -> frozenset[Role]:
    """Roles from a comma-separated list; unknown names are an error."""
    roles = set()
    for part in filter(None, (p.strip() for p in text.split(","))):
        try:
            roles.add(Role(part))
        except ValueError:
            valid = ", ".join(r.value for r in Role)
            raise PermissionDenied(f"unknown role {part!r}; roles are {valid}") from None
    return frozenset(roles)


def narrow(held: frozenset[Role], scope: frozenset[Role]) -> frozenset[Role]:
    """The roles of ``scope`` that ``held`` covers (grants nothing more): what a token
    scoped to ``scope`` may use, e.g. an admin's reader-only token acts as a reader."""
    allowed = frozenset().union(*(_GRANTS[r] for r in held))
    return frozenset(r for r in scope if _GRANTS[r] <= allowed)


def require(actor: str, roles: frozenset[Role], action: Action) -> None:
    """Raise :class:`PermissionDenied` unless one of ``roles`` grants ``action``."""
    if any(action in _GRANTS[r] for r in roles):
        return
    held = ", ".join(sorted(r.value for r in roles)) or "no role"
    needed = ", ".join(sorted(r.value for r in Role if action in _GRANTS[r]))
    raise PermissionDenied(f"{actor} ({held}) may not {action.value}: needs one of {needed}")
