"""The ``admission.k8s.io/v1`` AdmissionReview contract at the HTTP edge.

The API server POSTs an AdmissionReview with a ``request`` and expects the same kind back
with a ``response`` whose ``uid`` echoes the request's. Anything that is not such a review
is refused with a 4xx (with ``failurePolicy: Fail`` the API server then denies the object):
never an allow by accident. Text in a response (messages, warnings) is made inert and
bounded: repo names and reasons in it come from manifests and reviewers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from mlgate.hub.hf.errors import header_text
from mlgate.render.escape import inert

API_VERSION = "admission.k8s.io/v1"
MAX_MESSAGE = 4096
MAX_WARNINGS = 16


class GroupVersionKind(BaseModel):
    """``request.kind``: the kind of the object under review."""

    group: str = Field(default="", max_length=253)
    version: str = Field(max_length=63)
    kind: str = Field(max_length=63)


class UserInfo(BaseModel):
    """Who asked the API server (recorded in the audit log)."""

    username: str = Field(default="", max_length=512)


class AdmissionRequest(BaseModel):
    """``request``: the fields the webhook reads (the API server sends more)."""

    model_config = ConfigDict(extra="ignore")

    uid: str = Field(min_length=1, max_length=128)
    kind: GroupVersionKind
    subResource: str | None = Field(default=None, max_length=63)
    namespace: str | None = Field(default=None, max_length=253)
    name: str | None = Field(default=None, max_length=253)
    operation: Literal["CREATE", "UPDATE", "DELETE", "CONNECT"]
    userInfo: UserInfo = UserInfo()
    object: dict[str, Any] | None = None
    oldObject: dict[str, Any] | None = None
    dryRun: bool = False


class AdmissionReview(BaseModel):
    """The review the API server sends."""

    apiVersion: Literal["admission.k8s.io/v1"]
    kind: Literal["AdmissionReview"]
    request: AdmissionRequest


def response(uid: str, allowed: bool, message: str, warnings: tuple[str, ...]) -> dict[str, Any]:
    """The AdmissionReview answering request ``uid``."""
    body: dict[str, Any] = {"uid": uid, "allowed": allowed}
    if not allowed:
        text = inert(message)
        text = text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."
        body["status"] = {"code": 403, "reason": "Forbidden", "message": text}
    if warnings:
        body["warnings"] = [header_text(w) for w in warnings[:MAX_WARNINGS]]
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": body}
