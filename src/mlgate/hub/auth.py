"""Who a hub request acts as: the identity behind its bearer token, never a claimed name.

Clients send tokens the Hugging Face way (``Authorization: Bearer``, which ``huggingface_hub``
fills from ``HF_TOKEN`` or the stored token). Every write needs a valid token. A read without
one acts as the user ``anonymous`` when the registry policy allows anonymous reads and an
admin has created that user (``mlgate registry user anonymous --role reader``);
otherwise it is refused with 401.
"""

from __future__ import annotations

from fastapi import HTTPException, Request

from mlgate.registry.errors import Unauthenticated
from mlgate.registry.roles import Role
from mlgate.registry.service import Registry

ANONYMOUS = "anonymous"


def hub_registry(request: Request) -> Registry:
    """The registry the app serves, acting as the hub itself (no request identity)."""
    registry: Registry = request.app.state.registry
    return registry


def bearer_token(request: Request) -> str | None:
    """The bearer value of the request's ``Authorization`` header, if any."""
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HTTPException(401, "the Authorization header must be 'Bearer <token>'")
    return value.strip()


def reading_registry(request: Request) -> Registry:
    """The registry acting as the request's identity; anonymous reads where policy allows."""
    token = bearer_token(request)
    if token is None:
        registry = hub_registry(request)
        if registry.policy.anonymous_reads:
            return registry.acting_as(ANONYMOUS, frozenset({Role.READER}))
        raise HTTPException(401, "a token is required: set HF_TOKEN or send 'Bearer <token>'")
    return _authenticated(request, token)


def writing_registry(request: Request) -> Registry:
    """The registry acting as the request's identity; a valid token is required."""
    token = bearer_token(request)
    if token is None:
        raise HTTPException(401, "every write needs a token: send 'Bearer <token>'")
    return _authenticated(request, token)


def _authenticated(request: Request, token: str) -> Registry:
    registry = hub_registry(request)
    try:
        identity = registry.tokens.authenticate(token)
    except Unauthenticated as e:
        raise HTTPException(401, str(e)) from e
    request.state.identity = identity
    return registry.acting_as(identity.principal, identity.roles)
