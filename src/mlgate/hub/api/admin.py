"""Administration routes: users and their roles, and the registry policy."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter

from mlgate.hub.api.deps import Reader, UserName, Writer
from mlgate.hub.api.errors import ERROR_RESPONSES
from mlgate.hub.api.schemas import PolicyBody, UserIn, UserOut
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.roles import Action, parse_roles

router = APIRouter(tags=["admin"], responses=ERROR_RESPONSES)


@router.get("/users", response_model=list[UserOut])
def users(registry: Reader) -> list[dict[str, Any]]:
    """Every user and their roles."""
    return [{"name": n, "roles": list(r)} for n, r in registry.users().items()]


@router.put("/users/{name}", response_model=UserOut)
def put_user(name: UserName, body: UserIn, registry: Writer) -> dict[str, Any]:
    """Create or update a user (admin)."""
    roles = parse_roles(body.roles)
    registry.add_user(name, roles)
    return {"name": name, "roles": sorted(r.value for r in roles)}


@router.get("/policy", response_model=PolicyBody)
def policy(registry: Reader) -> dict[str, Any]:
    """The policy the registry enforces."""
    registry.require(Action.READ)
    return policy_body(registry.policy)


@router.put("/policy", response_model=PolicyBody)
def put_policy(body: PolicyBody, registry: Writer) -> dict[str, Any]:
    """Replace the policy (admin); fields left out take their defaults."""
    new = RegistryPolicy.from_json(body.model_dump_json())
    registry.set_policy(new)
    return policy_body(new)


def policy_body(policy: RegistryPolicy) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(policy.to_json())
    return body
