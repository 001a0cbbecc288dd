"""Token routes: a user creates, lists and revokes their own tokens; an admin anyone's.

A token can only narrow what the request's own token may do (see
:meth:`mlgate.registry.tokens.Tokens.create`), so a reader-scoped token never mints an admin one.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Query

from mlgate.hub.api.deps import Reader, TokenId, Writer
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import USER_PATTERN, NewTokenOut, TokenIn, TokenOut
from mlgate.registry.tokens import TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"], responses=ERROR_RESPONSES)


def token_body(info: TokenInfo) -> dict[str, Any]:
    """A token record as the API returns it, with its status now (never its secret)."""
    return {**vars(info), "roles": list(info.roles), "status": info.status(_now())}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


@router.post("", response_model=NewTokenOut, status_code=201)
def create(body: TokenIn, registry: Writer) -> dict[str, Any]:
    """A new token; its bearer value is in this response only."""
    days = body.expires_in_days
    new = registry.tokens.create(
        body.principal,
        label=body.label,
        roles=body.roles,
        expires_in=timedelta(days=days) if days is not None else None,
    )
    return {"token": new.secret, "info": token_body(new.info)}


@router.get("", response_model=list[TokenOut])
def list_tokens(
    registry: Reader,
    principal: str | None = Query(
        None, pattern=rf"{USER_PATTERN}|^\*$", description="'*' for everyone's"
    ),
) -> list[dict[str, Any]]:
    """The caller's tokens (another user's, or everyone's with ``*``, for an admin)."""
    return [token_body(info) for info in registry.tokens.list(principal)]


@router.delete("/{token_id}", response_model=TokenOut)
def revoke(token_id: TokenId, registry: Writer) -> dict[str, Any]:
    """Revoke a token for good (its owner or an admin)."""
    return token_body(registry.tokens.revoke(token_id))
