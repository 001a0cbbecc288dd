"""How the management API reports failure: a 4xx status and ``{"error": kind, "message"}``.

``kind`` names the registry error class (``NotFound``, ``PermissionDenied``...), so the remote
client raises the same exception the local registry would, and the CLI prints the same line.
Bad input of any kind is a 4xx, never a 5xx: a 500 would tell an attacker where to dig.
Messages travel only in the JSON body, where CR/LF are escaped, never in a header.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from mlgate.errors import MlgateError
from mlgate.hub.uploads import UploadTooLarge
from mlgate.registry.errors import (
    IngestRefused,
    NotFound,
    PermissionDenied,
    TransitionRefused,
    Unauthenticated,
)
from mlgate.render.escape import json_safe

# Most specific first: Unauthenticated is a PermissionDenied.
_STATUS: tuple[tuple[type[MlgateError], int], ...] = (
    (Unauthenticated, 401),
    (PermissionDenied, 403),
    (NotFound, 404),
    (TransitionRefused, 409),
    (UploadTooLarge, 413),
    (IngestRefused, 422),
)
# The kind of an HTTP-level refusal (auth dependency, routing, limits) by status.
_HTTP_KINDS = {
    401: "Unauthenticated",
    403: "PermissionDenied",
    404: "NotFound",
    405: "MethodNotAllowed",
    413: "PayloadTooLarge",
    414: "UriTooLong",
    422: "InvalidRequest",
    429: "RateLimited",
    431: "HeadersTooLarge",
}
_MAX_MESSAGE = 2000


class ErrorBody(BaseModel):
    """Every error response."""

    error: str
    message: str


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": kind}
    for status, kind in (
        (400, "Invalid request or registry error"),
        (401, "Missing, unknown, expired or revoked token"),
        (403, "The token's identity lacks the role"),
        (404, "No such model, version, alias, user or token"),
        (409, "The lifecycle refuses this transition"),
        (413, "Request body over the hub's limit"),
        (414, "URL over the hub's limit"),
        (422, "Malformed request body or parameters"),
        (429, "Rate limit exceeded"),
        (431, "Headers over the hub's limit"),
    )
}


def error_response(status: int, kind: str, message: str, **headers: str) -> JSONResponse:
    """The JSON error body every failure uses."""
    body = {"error": kind, "message": json_safe(message[:_MAX_MESSAGE])}
    return JSONResponse(body, status_code=status, headers=headers or None)


def status_of(error: MlgateError) -> int:
    """The HTTP status of a registry error (400 when nothing more specific applies)."""
    return next((code for cls, code in _STATUS if isinstance(error, cls)), 400)


async def _registry_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, MlgateError)
    return error_response(status_of(exc), type(exc).__name__, str(exc))


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    kind = _HTTP_KINDS.get(exc.status_code, "BadRequest")
    headers = dict(exc.headers or {})
    if exc.status_code == 401:
        headers.setdefault("WWW-Authenticate", "Bearer")
    return error_response(exc.status_code, kind, str(exc.detail), **headers)


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', 'invalid')}"
        for e in exc.errors()[:10]
    )
    return error_response(422, "InvalidRequest", problems or "invalid request")


def install_error_handlers(app: FastAPI) -> None:
    """Map registry errors, HTTP refusals and validation failures to the JSON error body."""
    app.add_exception_handler(MlgateError, _registry_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
