"""What every management route shares: the registry as the request's identity, and records
turned into JSON-safe response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends

from mlgate.hub.auth import reading_registry, writing_registry
from mlgate.registry.records import Version
from mlgate.registry.service import Registry
from mlgate.render.escape import json_safe

# A read acts as the token's identity (or anonymous where policy allows); a write needs a token.
Reader = Annotated[Registry, Depends(reading_registry)]
Writer = Annotated[Registry, Depends(writing_registry)]


def version_body(version: Version) -> dict[str, Any]:
    """A version as the API returns it: ``models show --format json``'s shape, with names
    that are not valid Unicode escaped (a JSON encoder would fail on them)."""
    body: dict[str, Any] = json_safe(version.to_json())
    return body
