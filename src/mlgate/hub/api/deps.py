"""What every management route shares: the registry as the request's identity, and records
turned into JSON-safe response bodies."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path

from mlgate.hub.api.schemas import (
    MODEL_PATTERN,
    REF_PATTERN,
    TOKEN_ID_PATTERN,
    USER_PATTERN,
)
from mlgate.hub.auth import reading_registry, writing_registry
from mlgate.registry.records import Version
from mlgate.registry.service import Registry
from mlgate.render.escape import json_safe

# A read acts as the token's identity (or anonymous where policy allows); a write needs a token.
Reader = Annotated[Registry, Depends(reading_registry)]
Writer = Annotated[Registry, Depends(writing_registry)]
# Path parameters: ``name@N``, ``name@alias`` or ``name``; a model name; a user; a token id.
Ref = Annotated[str, Path(max_length=300, pattern=REF_PATTERN)]
ModelName = Annotated[str, Path(max_length=200, pattern=MODEL_PATTERN)]
UserName = Annotated[str, Path(pattern=USER_PATTERN)]
TokenId = Annotated[str, Path(pattern=TOKEN_ID_PATTERN)]


def version_body(version: Version) -> dict[str, Any]:
    """A version as the API returns it: ``models show --format json``'s shape, with names
    that are not valid Unicode escaped (a JSON encoder would fail on them)."""
    body: dict[str, Any] = json_safe(version.to_json())
    return body
