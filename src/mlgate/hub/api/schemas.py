"""The management API's request and response bodies (pydantic, the HTTP edge only).

Responses mirror the registry's records (``Version.to_json()``, ``StateChange``, audit
verification...) field for field, so :mod:`mlgate.hub.client` rebuilds the very same records
and the CLI renders remote results exactly like local ones. Requests are closed (unknown
fields refused) and bounded (string lengths), so a malformed body is a 422 and changes nothing.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model

from mlgate.findings import Severity
from mlgate.registry.lifecycle import State
from mlgate.registry.policy import RegistryPolicy
from mlgate.registry.records import Decision, Download, FileRecord, Source, StateChange

# Names as the registry accepts them (model names as ingest checks them), stated in the
# document so that clients and fuzzers know, and so that nothing else (control characters:
# header and log injection; '.' segments) reaches the registry or a response.
SEGMENT = r"[A-Za-z0-9][A-Za-z0-9._-]*"
MODEL_PATTERN = rf"^{SEGMENT}(/{SEGMENT})?$"
REF_PATTERN = rf"^{SEGMENT}(/{SEGMENT})?(@[A-Za-z0-9._-]+)?$"
SELECTOR_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
USER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"
TOKEN_ID_PATTERN = r"^[0-9a-f]{16}$"  # noqa: S105 (the public id part, not a secret)
ROLES_PATTERN = r"^ *[a-z]+( *, *[a-z]+)* *$"  # e.g. "reader,publisher"

Reason = Annotated[str, Field(min_length=1, max_length=4000)]
Selector = Annotated[str, Field(pattern=SELECTOR_PATTERN)]


class _Closed(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- responses ------------------------------------------------------------------------------
# The registry's own frozen records (Source, FileRecord, StateChange, Checkpoint...) serve as
# response schemas where their fields are the JSON form; the rest are composed here.


class VersionOut(BaseModel):
    """A version as ``mlgate models show --format json`` prints it (lists empty in listings)."""

    model: str
    version: int
    state: State
    risk: str
    aliases: list[str]
    size: int
    source: Source
    revision: str | None
    ingested_by: str
    ingested_at: str
    content_digest: str
    formats: list[str]
    license: str | None
    owner: str
    converted_from: int | None
    files: list[FileRecord]
    decisions: list[Decision]
    history: list[StateChange]
    downloads: list[Download]
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


class UploadOut(BaseModel):
    """An upload session: ``id`` names it in ``/uploads/{id}/...``."""

    id: str
    uploader: str
    name: str
    owner: str | None
    scan: bool
    origin: str | None
    created_at: str
    committed: bool
    file_count: int
    size: int


class DerivationOut(BaseModel):
    kind: str
    value: str
    origin: str


class LineageOut(BaseModel):
    """What a version was built from (``mlgate lineage --format json``)."""

    version: str
    built_from: list[DerivationOut]


class AffectedVersionOut(BaseModel):
    ref: str
    model: str
    number: int
    state: State
    risk: str
    via: str
    aliases: list[str]
    downloads: int
    last_download: str | None


class AffectedOut(BaseModel):
    """Every version a base model, dataset, rule or digest touches, with its deployment."""

    kind: str
    value: str
    affected: list[AffectedVersionOut]


class SkippedOut(BaseModel):
    ref: str
    why: str


class BulkRevocationOut(BaseModel):
    revoked: list[str]
    skipped: list[SkippedOut]


class ReceivedOut(BaseModel):
    """A file an upload session received."""

    path: str
    size: int
    sha256: str


# -- requests -------------------------------------------------------------------------------


class ReasonIn(_Closed):
    reason: Reason


LineageKind = Literal["base_model", "dataset", "rule", "digest"]
# A query parameter: control characters are refused in any URL (hub/limits.py).
LineageValue = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")]


class BulkRevokeIn(_Closed):
    kind: LineageKind
    value: LineageValue
    reason: Reason


class PublishIn(_Closed):
    alias: Selector | None = None


class AliasIn(_Closed):
    """``version``: a number, or another alias to copy."""

    alias: Selector
    version: Selector


class RollbackIn(_Closed):
    alias: Selector = "production"
    to: Selector | None = None


class IngestIn(_Closed):
    """Only ``hf://ORG/NAME[@REV]`` sources, fetched from the hub's configured upstream: a
    path would let a caller read the server's files, an endpoint make it fetch any URL."""

    source: Annotated[str, Field(min_length=6, max_length=512, pattern=r"^hf://")]
    name: Annotated[str, Field(max_length=200, pattern=MODEL_PATTERN)] | None = None
    owner: Annotated[str, Field(max_length=128, pattern=USER_PATTERN)] | None = None
    scan: bool = True


class UploadIn(_Closed):
    """A new upload session: the model the files become a version of, and, shown as the
    version's source, where the uploader says they come from (no control characters)."""

    name: Annotated[str, Field(max_length=200, pattern=MODEL_PATTERN)]
    owner: Annotated[str, Field(max_length=128, pattern=USER_PATTERN)] | None = None
    scan: bool = True
    origin: (
        Annotated[str, Field(min_length=1, max_length=1024, pattern=r"^[^\x00-\x1f\x7f-\x9f]+$")]
        | None
    ) = None


class TokenIn(_Closed):
    # Printable ASCII: a label is shown in listings and terminals as it is.
    label: Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[ -~]+$")]
    principal: Annotated[str, Field(pattern=USER_PATTERN)] | None = None
    roles: Annotated[str, Field(max_length=128, pattern=ROLES_PATTERN)] | None = None
    expires_in_days: Annotated[float, Field(ge=0.001, le=3650)] | None = None


class UserIn(_Closed):
    roles: Annotated[str, Field(max_length=128, pattern=ROLES_PATTERN)]


def _policy_model() -> type[BaseModel]:
    """The policy body, built from :class:`RegistryPolicy`'s fields so a new policy setting
    is in the API the moment it is in the registry (severities travel by name)."""
    hints = typing.get_type_hints(RegistryPolicy)
    severity = Literal[tuple(s.name for s in Severity)]  # type: ignore[valid-type]
    kinds = {
        Severity | None: severity | None,
        # Every count in the policy (approvals, checkpoint interval) is at least 1.
        int: Annotated[int, Field(ge=1, le=1_000_000)],
    }
    specs: dict[str, Any] = {}
    for f in fields(RegistryPolicy):
        default = f.default.name if isinstance(f.default, Severity) else f.default
        specs[f.name] = (kinds.get(hints[f.name], hints[f.name]), default)
    config = ConfigDict(extra="forbid")
    model: type[BaseModel] = create_model("PolicyBody", __config__=config, **specs)
    return model


if typing.TYPE_CHECKING:

    class PolicyBody(BaseModel):
        """Every field of :class:`RegistryPolicy` (built at import time)."""

else:
    PolicyBody = _policy_model()
