"""The registry's records rebuilt from the management API's JSON (the inverse of the
shapes in :mod:`mlgate.hub.api.schemas`), for the remote client.

A body that does not have the expected shape is a :class:`RegistryError`, never a
``KeyError`` halfway through rendering.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar

from mlgate.registry.audit import AuditVerification, Checkpoint
from mlgate.registry.errors import RegistryError
from mlgate.registry.lifecycle import State
from mlgate.registry.records import (
    Decision,
    Download,
    FileRecord,
    ModelSummary,
    Source,
    StateChange,
    Version,
)
from mlgate.registry.tokens import NewToken, TokenInfo

_P = ParamSpec("_P")
_R = TypeVar("_R")


def _parser(func: Callable[_P, _R]) -> Callable[_P, _R]:
    @functools.wraps(func)
    def parse(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return func(*args, **kwargs)
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise RegistryError(f"the hub sent an unexpected answer ({func.__name__}: {e})") from e

    return parse


@_parser
def version_from_json(d: dict[str, Any]) -> Version:
    """A :class:`Version` from its ``to_json()`` form."""
    signature = d["signature"]
    return Version(
        model=d["model"],
        number=int(d["version"]),
        state=State(d["state"]),
        source=Source(**d["source"]),
        content_digest=d["content_digest"],
        size=int(d["size"]),
        formats=tuple(d["formats"]),
        license=d["license"],
        owner=d["owner"],
        ingested_at=d["ingested_at"],
        ingested_by=d["ingested_by"],
        risk=d["risk"],
        files=tuple(FileRecord(**f) for f in d["files"]),
        aliases=tuple(d["aliases"]),
        decisions=tuple(Decision(**x) for x in d["decisions"]),
        history=tuple(StateChange(**x) for x in d["history"]),
        downloads=tuple(Download(**x) for x in d["downloads"]),
        scan_report=d["scan_report"],
        dynamic_report=d["dynamic_report"],
        bom=d["bom"],
        signature=json.dumps(signature) if signature is not None else None,
        signed_by=d["signed_by"],
        converted_from=d["converted_from"],
    )


@_parser
def model_from_json(d: dict[str, Any]) -> ModelSummary:
    """A :class:`ModelSummary` with its versions."""
    versions = tuple(version_from_json(v) for v in d["versions"])
    aliases = {str(k): int(v) for k, v in d["aliases"].items()}
    return ModelSummary(d["name"], d["owner"], d["created_at"], versions, aliases)


@_parser
def verification_from_json(d: dict[str, Any]) -> AuditVerification:
    """The hub's verification of its audit log."""
    return AuditVerification(d["entries"], d["checkpoints"], d["first_bad"], tuple(d["problems"]))


@_parser
def checkpoint_from_json(d: dict[str, Any]) -> Checkpoint:
    """A signed checkpoint of the audit log."""
    return Checkpoint(d["seq"], d["head_hash"], d["at"], d["key_id"], d["signature"])


@_parser
def token_from_json(d: dict[str, Any]) -> TokenInfo:
    """A token record (its ``status`` is recomputed from its dates when rendered)."""
    fields = {k: v for k, v in d.items() if k != "status"}
    return TokenInfo(**{**fields, "roles": tuple(fields["roles"])})


@_parser
def new_token_from_json(d: dict[str, Any]) -> NewToken:
    """A token just created, with its secret."""
    return NewToken(token_from_json(d["info"]), d["token"])
