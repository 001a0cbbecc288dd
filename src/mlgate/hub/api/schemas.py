"""The management API's request and response bodies (pydantic, the HTTP edge only).

Responses mirror the registry's records (``Version.to_json()``, ``StateChange``, audit
verification...) field for field, so :mod:`mlgate.hub.client` rebuilds the very same records
and the CLI renders remote results exactly like local ones. Requests are closed (unknown
fields refused) and bounded (string lengths), so a malformed body is a 422 and changes nothing.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlgate.findings import Severity
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy

Reason = Annotated[str, Field(min_length=1, max_length=4000)]
Name = Annotated[str, Field(min_length=1, max_length=256)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- responses ------------------------------------------------------------------------------


class SourceOut(BaseModel):
    kind: str
    uri: str
    repo_id: str | None
    revision: str | None
    requested_revision: str | None


class FileOut(BaseModel):
    path: str
    digest: str
    size: int
    format: str


class DecisionOut(BaseModel):
    actor: str
    decision: str
    reason: str
    at: str


class StateChangeOut(BaseModel):
    version: int
    from_state: str | None
    to_state: str
    actor: str
    reason: str
    at: str


class DownloadOut(BaseModel):
    path: str
    actor: str
    at: str


class VersionOut(BaseModel):
    """A version as ``mlgate models show --format json`` prints it (lists empty in listings)."""

    model: str
    version: int
    state: State
    risk: str
    aliases: list[str]
    size: int
    source: SourceOut
    revision: str | None
    ingested_by: str
    ingested_at: str
    content_digest: str
    formats: list[str]
    license: str | None
    owner: str
    converted_from: int | None
    files: list[FileOut]
    decisions: list[DecisionOut]
    history: list[StateChangeOut]
    downloads: list[DownloadOut]
    scan_report: dict[str, Any] | None
    dynamic_report: dict[str, Any] | None
    bom: dict[str, Any] | None
    signed_by: str | None
    signature: dict[str, Any] | None


class ModelOut(BaseModel):
    name: str
    owner: str
    created_at: str
    aliases: dict[str, int]
    versions: list[VersionOut]


class VerificationOut(BaseModel):
    entries: int
    checkpoints: int
    first_bad: int | None
    problems: list[str]


class CheckpointOut(BaseModel):
    seq: int
    head_hash: str
    at: str
    key_id: str
    signature: str


class TokenOut(BaseModel):
    id: str
    principal: str
    label: str
    roles: list[str]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    revoked_by: str | None
    status: str


class NewTokenOut(BaseModel):
    """``token`` is the bearer value: shown once, never stored."""

    token: str
    info: TokenOut


class UserOut(BaseModel):
    name: str
    roles: list[str]


# -- requests -------------------------------------------------------------------------------


class ReasonIn(_Closed):
    reason: Reason


class PublishIn(_Closed):
    alias: Name | None = None


class AliasIn(_Closed):
    alias: Name
    version: Name


class RollbackIn(_Closed):
    alias: Name = "production"
    to: Name | None = None


class IngestIn(_Closed):
    """Only ``hf://ORG/NAME[@REV]`` sources, fetched from the hub's configured upstream: a
    path would let a caller read the server's files, an endpoint make it fetch any URL."""

    source: Annotated[str, Field(min_length=6, max_length=512, pattern=r"^hf://")]
    name: Name | None = None
    owner: Name | None = None
    scan: bool = True


class TokenIn(_Closed):
    label: Annotated[str, Field(min_length=1, max_length=128)]
    principal: Name | None = None
    roles: Annotated[str, Field(max_length=128)] | None = None
    expires_in_days: Annotated[float, Field(gt=0, le=3650)] | None = None


class UserIn(_Closed):
    roles: Annotated[str, Field(min_length=1, max_length=128)]


def _policy_model() -> type[BaseModel]:
    """The policy body, built from :class:`RegistryPolicy`'s fields so a new policy setting
    is in the API the moment it is in the registry (severities travel by name)."""
    hints = typing.get_type_hints(RegistryPolicy)
    specs: dict[str, Any] = {}
    for f in fields(RegistryPolicy):
        kind = hints[f.name]
        default = f.default.name if isinstance(f.default, Severity) else f.default
        specs[f.name] = (str | None if kind == Severity | None else kind, default)
    config = ConfigDict(extra="forbid", strict=True)
    model: type[BaseModel] = create_model("PolicyBody", __config__=config, **specs)
    return model


if typing.TYPE_CHECKING:

    class PolicyBody(BaseModel):
        """Every field of :class:`RegistryPolicy` (built at import time)."""

else:
    PolicyBody = _policy_model()
